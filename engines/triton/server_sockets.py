"""What a running tritonserver really listens on, read back from /proc (Linux): the address and port of every
TCP socket its process holds in the listening state. ``facebatch serve`` says these, not what it asked for."""

from __future__ import annotations

import contextlib
import ipaddress
import os
from pathlib import Path

TCP_LISTEN = "0A"  # the state column of /proc/net/tcp{,6}


def proc_address(hex_address: str) -> tuple[str, int]:
    """/proc/net/tcp{,6}'s ``HEXADDR:HEXPORT`` as (address, port): each 32-bit word of the address is printed
    in host (little-endian) order, and an IPv4-mapped IPv6 address (``::ffff:127.0.0.1``) is its IPv4 one."""
    address, port = hex_address.split(":")
    raw = b"".join(bytes.fromhex(address[i : i + 8])[::-1] for i in range(0, len(address), 8))
    ip = ipaddress.ip_address(raw)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip), int(port, 16)


def listening_sockets(pid: int) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket process ``pid`` listens on; empty where /proc cannot say."""
    listening: dict[str, tuple[str, int]] = {}  # socket inode → where it listens
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == TCP_LISTEN:
                    listening[fields[9]] = proc_address(fields[1])
    found = set()
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:[") and target[8:-1] in listening:
                    found.add(listening[target[8:-1]])
    return found


def bound_endpoints(pid: int, ports: dict[str, int], asked: str) -> dict[str, str]:
    """Each endpoint (``ports``: name → port) as ``address:port`` where process ``pid`` really listens on that
    port (several addresses joined by ", "); ``asked:port`` where /proc does not show it."""
    sockets = listening_sockets(pid)
    bound = {}
    for name, port in ports.items():
        addresses = sorted(address for address, listened in sockets if listened == port) or [asked]
        bound[name] = ", ".join(f"[{a}]:{port}" if ":" in a else f"{a}:{port}" for a in addresses)
    return bound
