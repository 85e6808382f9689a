"""Keep every model of a running tritonserver serving: when a python model's stub dies (killed,
out of memory, a crash in native code), reload that model through the repository API.

Triton stopped restarting dead python stubs in 24.06 (server issues #7347, #7862, #8604): a
model whose stub is gone answers "Stub process … is not healthy" to every request until it is
loaded again, and nvidia-pytriton's 2.51 still reports it ready. So the supervisor watches both
things: each model's stubs (the instances it had when last loaded, read from /proc) and
Triton's own readiness (which newer releases tie to the stubs), and reloads a model missing
either. A model whose reload fails is tried again later, each wait twice the last. The repository
API is restricted to the key the ``TritonServer`` holds; the supervisor reaches it only through
that object (``model_states``, ``reload_model``), which sends the key with every request.

    supervisor = ModelSupervisor(server)   # after server.start()
    for recovery in supervisor.check():    # call every second or so
        print(recovery.line())
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from facebatch.core.errors import EngineError
from facebatch.engines.triton.server import TritonServer
from facebatch.engines.triton.stubs import PythonStub, python_stubs

SUPERVISE_INTERVAL_S = 1.0  # how often `facebatch serve` checks its models
RETRY_WAITS_S = (2.0, 4.0, 8.0, 16.0, 30.0)  # after a failed reload; the last repeats


@dataclass(frozen=True)
class Recovery:
    """One model found dead and what reloading it did."""

    model: str
    cause: str
    seconds: float  # from finding it dead to serving again (or to the failed attempt's end)
    error: str | None = None  # None: serving again
    retry_in_s: float | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def line(self) -> str:
        if self.ok:
            return f"{self.model}: {self.cause}; loaded it again in {self.seconds:.1f} s, serving again"
        return f"{self.model}: {self.cause}; loading it again failed ({self.error}); trying again in {self.retry_in_s:.0f} s"


@dataclass
class _Watched:
    stubs: list[PythonStub] = field(default_factory=list)  # as last loaded
    failures: int = 0
    next_attempt: float = 0.0


class ModelSupervisor:
    """Watches the models a ``TritonServer`` has loaded and reloads one that stopped serving."""

    def __init__(self, server: TritonServer, clock: Callable[[], float] = time.monotonic) -> None:
        if server.process is None:
            raise EngineError("the supervisor watches a running tritonserver: start it first")
        self.server = server
        self.clock = clock
        self.recoveries: list[Recovery] = []
        self._models = {name: _Watched() for name, state in server.model_states().items() if state == "READY"}
        self._record(list(self._models))

    @property
    def models(self) -> list[str]:
        return sorted(self._models)

    def stubs(self, model: str) -> list[PythonStub]:
        return list(self._models[model].stubs)

    def _record(self, models: list[str]) -> None:
        assert self.server.process is not None
        live = python_stubs(self.server.process.pid)
        for name in models:
            self._models[name].stubs = [stub for stub in live if stub.model == name]

    def _cause(self, name: str, live: list[PythonStub]) -> str | None:
        """Why ``name`` needs loading again, or None while it serves."""
        alive = {stub.pid for stub in live if stub.model == name}
        gone = [stub for stub in self._models[name].stubs if stub.pid not in alive]
        if gone:
            stub = gone[0]
            more = f" (and {len(gone) - 1} more)" if len(gone) > 1 else ""
            return f"its python stub {stub.instance} (pid {stub.pid}) is gone{more}"
        if self.server.model_ready(name) is False:
            return "Triton reports it not ready"
        return None

    def check(self) -> list[Recovery]:
        """Reload every model that stopped serving (and is due for an attempt); what was done."""
        process = self.server.process
        if process is None or process.poll() is not None:
            raise EngineError(f"tritonserver stopped by itself: {self.server.failure()}")
        live = python_stubs(process.pid)
        done = []
        for name, watched in sorted(self._models.items()):
            cause = self._cause(name, live)
            if cause is None or self.clock() < watched.next_attempt:
                continue
            done.append(self._reload(name, watched, cause))
        self.recoveries += done
        return done

    def _reload(self, name: str, watched: _Watched, cause: str) -> Recovery:
        start = self.clock()
        dead = list(watched.stubs)
        try:
            self.server.reload_model(name)
        except EngineError as exc:
            wait = RETRY_WAITS_S[min(watched.failures, len(RETRY_WAITS_S) - 1)]
            watched.failures += 1
            watched.next_attempt = self.clock() + wait
            self._record([name])
            return Recovery(name, cause, self.clock() - start, str(exc), wait)
        watched.failures = 0
        watched.next_attempt = 0.0
        self._record([name])
        kept = {stub.region for stub in watched.stubs}
        for stub in dead:  # a killed stub cannot remove its shared memory; unloading does not either
            if stub.region is not None and stub.region not in kept:
                with contextlib.suppress(OSError):
                    stub.region.unlink()
        return Recovery(name, cause, self.clock() - start)
