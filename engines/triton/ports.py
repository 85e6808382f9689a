"""Where a served model listens: the ports (each checked free before the server starts) and the
address (loopback unless told otherwise; another address is said in one line)."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

from facebatch.core.errors import SpecError
from facebatch.engines.triton.defaults import RESTRICTED_APIS


def exposure(address: str) -> str | None:
    """One line saying what a server listening on ``address`` opens to other hosts; None on loopback."""
    try:
        if ipaddress.ip_address(address).is_loopback:
            return None
    except ValueError:
        pass  # a host name or "": not known to be loopback, so say it
    return (
        f"listening on {address}: inference, health, metadata, statistics and metrics are open to every host that "
        f"reaches it; the {', '.join(api.replace('model-', '') for api in RESTRICTED_APIS[:-1])} and "
        f"{RESTRICTED_APIS[-1]} APIs need a key only this process has"
    )


@dataclass(frozen=True)
class ServerPorts:
    http: int
    grpc: int
    metrics: int | None = None  # None: no metrics endpoint

    def named(self) -> list[tuple[str, int]]:
        """Each endpoint's port, by the field that sets it (``ServeOptions``, the CLI's flags)."""
        ports = [("http_port", self.http), ("grpc_port", self.grpc)]
        return ports + ([("metrics_port", self.metrics)] if self.metrics is not None else [])


def check_ports_free(ports: ServerPorts, address: str) -> None:
    """A busy port is refused up front, naming the field that moves it (tritonserver would start,
    fail to bind and exit with less to say)."""
    seen = set()
    for name, port in ports.named():
        if not 0 < port < 65536:
            raise SpecError(f"{name} {port} is not a port number", field=name)
        if port in seen:
            raise SpecError(f"{name} {port} is also given to another endpoint; give each its own port", field=name)
        seen.add(port)
    for name, port in ports.named():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((address, port))
            except OSError:
                raise SpecError(f"port {port} on {address} is in use; pass another {name}", field=name) from None


def free_ports(count: int, address: str = "127.0.0.1") -> list[int]:
    """``count`` distinct ports the kernel says are free right now."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((address, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()
