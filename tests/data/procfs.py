"""What the tests read of running processes from /proc: a process tree, the TCP sockets processes listen on,
their resident memory. Plain reads, links not followed; a process that ends meanwhile is skipped."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from facebatch.engines.triton.server_sockets import proc_address  # one parser: the banner's and the tests'


def process_tree(root: int) -> set[int]:
    """``root`` and every process descended from it."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
    found, grown = {root}, True
    while grown:
        more = {pid for pid, parent in parents.items() if parent in found} - found
        found |= more
        grown = bool(more)
    return found


def tcp_listeners(pids: set[int]) -> set[tuple[str, str, int]]:
    """(process name, address, port) of every TCP socket one of ``pids`` listens on."""
    listening: dict[str, tuple[str, int]] = {}
    for pid in pids:
        for table in ("tcp", "tcp6"):
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
                    fields = line.split()
                    if fields[3] == "0A":  # TCP_LISTEN
                        listening[fields[9]] = proc_address(fields[1])
    found = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            name = Path(f"/proc/{pid}/comm").read_text().strip()
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    inode = target[len("socket:[") : -1] if target.startswith("socket:[") else None
                    if inode in listening:
                        found.add((name, *listening[inode]))
    return found


def resident_bytes(pids: set[int]) -> int:
    """The resident memory (VmRSS) of ``pids`` together."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            status = Path(f"/proc/{pid}/status").read_text()
            total += next((int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    return total
