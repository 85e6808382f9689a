"""``serve``: a real tritonserver on a model repository until it is stopped, every model kept serving.

The tritonserver on PATH, or the one inside the nvidia-pytriton wheel; python-backend models run in
``python_env``. It listens on loopback unless ``address`` says otherwise (another address is said in one
line, ``exposure``); the repository, shared-memory, logging and trace APIs answer only this process, which
holds a key made for the run. Refused before anything starts: a log file that is one of the inputs (inside
the repository or the python environment), a repository without models, a python environment that cannot
import facebatch's models, a tritonserver that cannot keep its admin APIs behind a key, a busy port. A model
that stops serving (its python stub killed: Triton does not restart one) is loaded again, each time said.
tritonserver's log is kept only where ``log`` says (else it goes with the server: on a machine without a GPU it
is mostly CUDA and NVML noise); a server that fails raises ``ServerFailed`` with the log's last lines. The result
says where the server really listens (read back from /proc) and which signal stopped it.
"""

from __future__ import annotations

import contextlib
import json
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facebatch.core.atomic import InputFiles, check_output_file
from facebatch.core.errors import EngineError, SpecError
from facebatch.engines.triton.defaults import (
    DEFAULT_ADDRESS,
    DEFAULT_GRPC_PORT,
    DEFAULT_HTTP_PORT,
    DEFAULT_METRICS_PORT,
    READY_TIMEOUT_S,
)
from facebatch.engines.triton.install import python_env
from facebatch.engines.triton.ports import ServerPorts, exposure
from facebatch.engines.triton.server import TritonServer
from facebatch.engines.triton.server_log import ServerFailed
from facebatch.engines.triton.supervisor import SUPERVISE_INTERVAL_S, ModelSupervisor, Recovery

# Ctrl-C, a service manager's stop and a closed terminal end the same clean way
STOPPING_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
ENDPOINT_LABELS = {"http": "HTTP", "grpc": "gRPC", "metrics": "metrics"}


@dataclass(frozen=True)
class ServeOptions:
    """The repository to serve, where, and with which python environment."""

    repository: Path
    http_port: int = DEFAULT_HTTP_PORT
    grpc_port: int = DEFAULT_GRPC_PORT
    metrics_port: int | None = DEFAULT_METRICS_PORT  # None or 0: no metrics endpoint
    address: str = DEFAULT_ADDRESS  # loopback; another address opens inference and health to other hosts
    python_env: Path | None = None  # where python-backend models run; None: this interpreter's environment
    log: Path | None = None  # tritonserver's log, kept; None: not kept (its last lines in a ServerFailed)
    show_log: bool = False  # without a log file: tritonserver's log on this process's terminal
    ready_timeout: float = READY_TIMEOUT_S  # seconds for every model to load


@dataclass
class ServeResult:
    """What was served, where, and what was done to keep it serving (filled in while it serves)."""

    repository: Path
    binary: Path
    source: str  # "PATH" or "nvidia-pytriton"
    address: str
    http_url: str
    grpc_url: str
    metrics_url: str | None
    exposure: str | None  # what another address than loopback opens, in one line; None on loopback
    listening: dict[str, str] = field(default_factory=dict)  # http, grpc, metrics → address:port really bound
    models: list[str] = field(default_factory=list)  # the models watched
    recoveries: list[Recovery] = field(default_factory=list)
    seconds: float = 0.0  # how long it served
    signal: str | None = None  # the signal that stopped it (SIGINT, SIGTERM, SIGHUP); None: the stop event

    def to_dict(self) -> dict[str, Any]:
        return {
            "repository": str(self.repository),
            "tritonserver": str(self.binary),
            "source": self.source,
            "address": self.address,
            "http": self.http_url,
            "grpc": self.grpc_url,
            "metrics": self.metrics_url,
            "exposure": self.exposure,
            "listening": self.listening,
            "models": self.models,
            "recoveries": [{"model": r.model, "ok": r.ok, "line": r.line()} for r in self.recoveries],
            "seconds": round(self.seconds, 3),
            "signal": self.signal,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def to_markdown(self) -> str:
        lines = [
            f"# Served {self.repository}",
            "",
            f"tritonserver {self.binary} ({self.source}); {self.endpoints(', ')}",
            "",
            f"Models: {', '.join(self.models) or 'none'}; served {self.seconds:.0f} s"
            + (f", stopped by {self.signal}." if self.signal else "."),
        ]
        if self.exposure:
            lines += ["", self.exposure]
        lines += ["", *(f"- {r.line()}" for r in self.recoveries)] if self.recoveries else []
        return "\n".join(lines) + "\n"

    def endpoints(self, separator: str = "   ") -> str:
        """Where each endpoint listens, as bound (``HTTP 0.0.0.0:8000``), with the address a client on this
        machine uses where that differs."""
        asked = {"http": self.http_url, "grpc": self.grpc_url, "metrics": self.metrics_url}
        bound = self.listening or {name: url for name, url in asked.items() if url}
        return separator.join(
            f"{ENDPOINT_LABELS[name]} {where}" + (f" (here: {asked[name]})" if asked[name] not in (None, where) else "")
            for name, where in bound.items()
        )


def serve(
    options: ServeOptions,
    *,
    stop: threading.Event | None = None,
    on_ready: Callable[[ServeResult], None] | None = None,
    on_recovery: Callable[[Recovery], None] | None = None,
) -> ServeResult:
    """Serve until ``stop`` is set; without one, until SIGINT, SIGTERM or SIGHUP (each set to stop it once every
    model is loaded, restored before the server stops; from the main thread only; ``result.signal`` names it). Before that, an interrupt while the
    models load stops the server too. ``on_ready`` hears once when every model is loaded, ``on_recovery`` each
    model loaded again. The server and every process it started are stopped when this returns or raises."""
    if stop is None and threading.current_thread() is not threading.main_thread():
        raise SpecError("serve runs until a signal only in the main thread; from another thread, pass a stop event")
    _check_log(options)
    ports = ServerPorts(options.http_port, options.grpc_port, options.metrics_port or None)
    server = TritonServer(
        options.repository,
        ports,
        options.address,
        python_env(options.python_env),
        log_file=options.log,
        ready_timeout=options.ready_timeout,
        show_log=options.show_log,
    )
    with server:  # an interrupt while the models load: raised here, and the server is stopped
        with _until_stopped(stop) as (stopped, received):
            result = _serving(server)
            supervisor = ModelSupervisor(server)
            result.models = supervisor.models
            if on_ready is not None:
                on_ready(result)
            began = time.monotonic()
            while not stopped.wait(SUPERVISE_INTERVAL_S):
                for recovery in _checked(server, supervisor):
                    result.recoveries.append(recovery)
                    if on_recovery is not None:
                        on_recovery(recovery)
            result.seconds = time.monotonic() - began
            result.signal = signal.Signals(received[0]).name if received else None
    return result


def _checked(server: TritonServer, supervisor: ModelSupervisor) -> list[Recovery]:
    """The supervisor's round; a server that stopped by itself raises ``ServerFailed`` with its log's last lines
    (read while the server's scratch log is still there)."""
    try:
        return supervisor.check()
    except ServerFailed:
        raise
    except EngineError as exc:
        raise server.failed(str(exc)) from None


def _check_log(options: ServeOptions) -> None:
    """The log is written by tritonserver, never over one of the inputs: the repository, the python environment."""
    if options.log is None:
        return
    folders = [options.repository] + ([options.python_env] if options.python_env is not None else [])
    check_output_file(options.log, "log", InputFiles([], [(Path(f), None) for f in folders]))


def _serving(server: TritonServer) -> ServeResult:
    ports = server.ports
    return ServeResult(
        repository=server.repository,
        binary=server.install.binary,
        source=server.install.source,
        address=server.address,
        http_url=server.http_url,
        grpc_url=server.grpc_url,
        metrics_url=f"{server.host}:{ports.metrics}" if ports.metrics else None,
        exposure=exposure(server.address),
        listening=server.bound(),
    )


@contextlib.contextmanager
def _until_stopped(stop: threading.Event | None) -> Iterator[tuple[threading.Event, list[int]]]:
    """``stop``; or an event that the ``STOPPING_SIGNALS`` set while the block runs (set explicitly: a shell
    starts background jobs with SIGINT ignored), the previous handlers restored after it; with the signals
    received, in order."""
    received: list[int] = []
    if stop is not None:
        yield stop, received
        return
    stopped = threading.Event()

    def stopping(signum: int, _frame: object) -> None:
        received.append(signum)
        stopped.set()

    previous = {sig: signal.signal(sig, stopping) for sig in STOPPING_SIGNALS}
    try:
        yield stopped, received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
