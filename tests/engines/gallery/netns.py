"""Two network namespaces joined by a veth pair, made for one test and removed after it: a Ray cluster of two
nodes on this machine that never touches the machine's own network (each node registers its veth address,
the only one besides loopback in its namespace). Needs root (CAP_NET_ADMIN) and ``ip``; ``unavailable()``
says why not where they are missing, for the test to skip with."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass


def ip(*arguments: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *arguments], capture_output=True, text=True, check=check, timeout=30)


def unavailable() -> str | None:
    """Why namespaces cannot be made here (no ``ip``, no CAP_NET_ADMIN), or None."""
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is not installed"
    probe = f"fbprobe{secrets.token_hex(3)}"
    made = ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"network namespaces cannot be made here (no CAP_NET_ADMIN?): {made.stderr.strip()}"
    ip("netns", "delete", probe, check=False)
    return None


@dataclass(frozen=True)
class Namespace:
    name: str
    address: str  # its end of the veth pair

    def command(self, argv: Sequence[str], env: dict[str, str] | None = None) -> list[str]:
        """``argv`` run inside this namespace, with ``env`` as its whole environment (ip netns exec keeps its own)."""
        settings = [f"{k}={v}" for k, v in (env or {}).items()]
        return ["ip", "netns", "exec", self.name, "env", "-i", *settings, *argv]

    def pids(self) -> set[int]:
        found = ip("netns", "pids", self.name, check=False).stdout.split()
        return {int(pid) for pid in found if pid.isdigit()}

    def listeners(self) -> list[str]:
        """Every TCP address listened on inside the namespace (``ss -ltn``)."""
        shown = ip("netns", "exec", self.name, "ss", "-Hltn", check=False).stdout.splitlines()
        return [line.split()[3] for line in shown if len(line.split()) > 3]

    def addresses(self) -> list[str]:
        shown = ip("-n", self.name, "-o", "-4", "addr", "show", check=False).stdout.splitlines()
        return [line.split()[3].split("/")[0] for line in shown]

    def kill_all(self) -> None:
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def two_namespaces() -> Iterator[tuple[Namespace, Namespace]]:
    """Namespaces A and B (names unique to this run), 10.250.N.1/30 ↔ 10.250.N.2/30 over a veth pair, loopback
    up in each; every process left in them killed and both removed at the end, even when the test fails."""
    tag = secrets.token_hex(3)
    subnet = int(tag, 16) % 250 + 1
    a, b = Namespace(f"fbA{tag}", f"10.250.{subnet}.1"), Namespace(f"fbB{tag}", f"10.250.{subnet}.2")
    made: list[Namespace] = []
    try:
        for space in (a, b):
            ip("netns", "add", space.name)
            made.append(space)
            ip("-n", space.name, "link", "set", "lo", "up")
        ip("-n", a.name, "link", "add", f"va{tag}", "type", "veth", "peer", "name", f"vb{tag}", "netns", b.name)
        for space, link in ((a, f"va{tag}"), (b, f"vb{tag}")):
            ip("-n", space.name, "addr", "add", f"{space.address}/30", "dev", link)
            ip("-n", space.name, "link", "set", link, "up")
        yield a, b
    finally:
        for space in made:
            space.kill_all()
        for space in made:
            ip("netns", "delete", space.name, check=False)  # the veth pair goes with its namespaces
