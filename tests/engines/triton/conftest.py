"""What the served tests share: the tritonserver found here (PATH, else nvidia-pytriton's), or a skip saying why;
the sockets a process listens on."""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path

import pytest

from facebatch.engines.triton.server import find_tritonserver
from facebatch.errors import SpecError


@pytest.fixture(scope="module")
def install():
    try:
        return find_tritonserver()
    except SpecError as exc:
        pytest.skip(str(exc))


def listening(pid: int) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket that process ``pid`` listens on, read from /proc."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for table, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state != "0A" or inode not in inodes:  # 0A: LISTEN
                continue
            address, port = local.split(":")
            raw = bytes.fromhex(address)
            # /proc prints each 32-bit word of the address in host (little-endian) order
            raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            ip = ipaddress.ip_address(socket.inet_ntop(family, raw))
            mapped = getattr(ip, "ipv4_mapped", None)  # ::ffff:127.0.0.1 (the metrics endpoint's socket) is 127.0.0.1
            found.add((str(mapped or ip), int(port, 16)))
    return found
