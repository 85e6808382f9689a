"""Start, watch and stop a real ``tritonserver`` on a model repository.

Which tritonserver and which python environment its python models run in: ``install.py``; the
ports and the address: ``ports.py``.

    with TritonServer(repository, ServerPorts(8000, 8001, 8002)) as server:
        server.http_url  # ready: every model loaded

Leaving the block (or Ctrl-C in ``facebatch serve``) stops the server and every process it
started; nothing is left running. Its log goes to ``log_file``; without one, to a scratch file removed when it
stops (``show_log``: to this process's terminal), whose last lines a ``ServerFailed`` carries. ``bound()`` says
where it really listens, read back from /proc.

Who may do what: the server listens on 127.0.0.1 unless given another address. Inference,
health, metadata and statistics are open to every client that reaches it; the APIs that change
what it runs, maps or writes (``RESTRICTED_APIS``: the model repository, where a client could
load a ``model.py`` of its own, shared memory, logging, trace) answer only requests carrying
``KEY_HEADER`` with a key made for this run and held by this object alone (``key_headers``),
which ``reload_model`` and ``model_states`` send. tritonserver takes the key on its command line
only, so local users can read it in /proc/PID/cmdline while it runs (docs/triton.md).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from facebatch.core.errors import EngineError, SpecError
from facebatch.core.interrupts import Interrupted
from facebatch.engines.triton.defaults import (
    DEFAULT_ADDRESS,
    KEY_HEADER,
    MANIFEST,
    READY_TIMEOUT_S,
    RESTRICTED_APIS,
    STOP_TIMEOUT_S,
)
from facebatch.engines.triton.install import (
    RESTRICTING_FLAGS,
    PythonEnv,
    TritonInstall,
    backend_directory,
    can_restrict,
    check_backends,
    find_tritonserver,
    python_env,
    python_stub,
)
from facebatch.engines.triton.ports import ServerPorts, check_ports_free
from facebatch.engines.triton.server_log import ServerFailed, ServerLog
from facebatch.engines.triton.server_sockets import bound_endpoints
from facebatch.engines.triton.stubs import python_stubs

# tritonserver prefixes the header of --grpc-restricted-protocol with this on gRPC (metadata keys)
GRPC_KEY_PREFIX = "triton-grpc-protocol-"


def check_repository(repository: Path) -> None:
    """A folder of Triton models: refused when it does not exist or holds no model."""
    repository = Path(repository)
    if not repository.is_dir():
        raise SpecError(
            f"repository {repository} does not exist; write one first (a Triton repository from artifacts)",
            field="repository",
        )
    if not any(p.is_dir() and (p / "config.pbtxt").is_file() for p in repository.iterdir()):
        hint = "" if (repository / MANIFEST).is_file() else "; write one from artifacts first"
        raise SpecError(f"repository {repository} holds no model (no */config.pbtxt){hint}", field="repository")


class TritonServer:
    """A running tritonserver; ready on entry (every model loaded), stopped on exit."""

    def __init__(
        self,
        repository: Path,
        ports: ServerPorts,
        address: str = DEFAULT_ADDRESS,
        env: PythonEnv | None = None,
        install: TritonInstall | None = None,
        log_file: Path | None = None,
        ready_timeout: float = READY_TIMEOUT_S,
        show_log: bool = False,
    ) -> None:
        self.repository = Path(repository).resolve()
        self.ports = ports
        self.address = address
        self.install = install or find_tritonserver()
        self.env = env or python_env()
        self.log_file = log_file  # None: a scratch file, removed when the server stops; or the terminal (show_log)
        self.log = ServerLog(log_file, show_log)
        self.ready_timeout = ready_timeout
        self.process: subprocess.Popen | None = None
        self._scratch: tempfile.TemporaryDirectory | None = None
        self._key = secrets.token_urlsafe(32)  # this run's key to the restricted APIs; never written anywhere

    def key_headers(self, protocol: str = "http") -> dict[str, str]:
        """The header that opens the restricted APIs of this server, for ``protocol`` (http or grpc)."""
        if protocol not in ("http", "grpc"):
            raise ValueError(f"protocol is http or grpc, not {protocol!r}")
        name = KEY_HEADER if protocol == "http" else GRPC_KEY_PREFIX + KEY_HEADER
        return {name: self._key}

    @property
    def host(self) -> str:
        return "127.0.0.1" if self.address in ("0.0.0.0", "") else self.address

    @property
    def http_url(self) -> str:
        return f"{self.host}:{self.ports.http}"

    @property
    def grpc_url(self) -> str:
        return f"{self.host}:{self.ports.grpc}"

    def bound(self) -> dict[str, str]:
        """Each endpoint (http, grpc, metrics) as the ``address:port`` the running server really listens on."""
        assert self.process is not None
        ports = {"http": self.ports.http, "grpc": self.ports.grpc}
        return bound_endpoints(
            self.process.pid, ports | ({"metrics": self.ports.metrics} if self.ports.metrics else {}), self.address
        )

    # -- set-up ---------------------------------------------------------------------------------------
    def _backend_directory(self) -> Path | None:
        """nvidia-pytriton's backends with the python stub for our interpreter beside the backend, in a
        scratch folder of this server's; None for a tritonserver from PATH."""
        if not self.install.bundled:
            return None
        stub = python_stub(self.install, self.env)
        assert self._scratch is not None
        return backend_directory(self.install, stub, Path(self._scratch.name))

    def command(self, backends: Path | None) -> list[str]:
        """tritonserver's arguments. They hold this run's key: show them to no one."""
        restricted = f"{','.join(RESTRICTED_APIS)}:{KEY_HEADER}={self._key}"
        command = [
            str(self.install.binary),
            f"--model-repository={self.repository}",
            f"--http-address={self.address}",
            f"--grpc-address={self.address}",
            f"--http-port={self.ports.http}",
            f"--grpc-port={self.ports.grpc}",
            f"--exit-timeout-secs={int(STOP_TIMEOUT_S)}",
            # every model loaded at start, and each can be reloaded through the repository API: what
            # engines/triton/supervisor.py does when a python model's stub dies (Triton no longer restarts one)
            "--model-control-mode=explicit",
            "--load-model=*",
        ]
        # ... and only by this object: a client that could load a model could run its own model.py in the server
        command += [f"{flag}={restricted}" for flag in RESTRICTING_FLAGS]
        if self.ports.metrics is None:
            command.append("--allow-metrics=false")
        else:
            command += [f"--metrics-address={self.address}", f"--metrics-port={self.ports.metrics}"]
        if backends is not None:
            command.append(f"--backend-directory={backends}")
        return command

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PATH"] = f"{self.env.bin}{os.pathsep}{env.get('PATH', '')}"
        first = str(self.env.libpython) if self.env.libpython is not None else ""  # the stub's own interpreter's
        last = str(self.install.libraries) if self.install.libraries is not None else ""
        if libraries := os.pathsep.join(p for p in (first, env.get("LD_LIBRARY_PATH", ""), last) if p):
            env["LD_LIBRARY_PATH"] = libraries
        env.pop("PYTHONPATH", None)  # the stub imports what the python environment has, nothing else
        return env

    # -- life cycle ---------------------------------------------------------------------------------
    def check_restrictable(self) -> None:
        """A tritonserver that cannot restrict its admin APIs (before 2.40, NGC 23.11) is refused: with
        explicit model control every client could load code into it."""
        if not can_restrict(str(self.install.binary), tuple(sorted(self.environment().items()))):
            raise SpecError(
                f"{self.install.binary} has no {' or '.join(RESTRICTING_FLAGS)}, so every client could load a model "
                "into it; use tritonserver 2.40 (NGC 23.11) or newer, better the current release"
            )

    def start(self) -> TritonServer:
        check_repository(self.repository)
        check_backends(self.install, self.repository)
        self.check_restrictable()
        check_ports_free(self.ports, self.address)
        self._scratch = tempfile.TemporaryDirectory(prefix="facebatch-triton-")  # the backends, the unkept log
        backends = self._backend_directory()
        output = self.log.open(Path(self._scratch.name))  # open as long as the server runs
        # its own session: the python stubs it starts share its process group, so one signal reaches all
        self.process = subprocess.Popen(
            self.command(backends),
            env=self.environment(),
            stdout=output,
            stderr=subprocess.STDOUT if output else None,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.http_url}/v2/health/ready", timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    # -- the repository API (explicit model control; restricted: every request carries the key) ----------
    def _post(self, path: str, timeout: float) -> str:
        request = urllib.request.Request(
            f"http://{self.http_url}{path}", data=b"{}", method="POST", headers=self.key_headers("http")
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.read().decode()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            with contextlib.suppress(ValueError):
                detail = json.loads(detail).get("error", detail)
            first = next((line.strip() for line in detail.splitlines() if line.strip()), "no reason given")
            raise EngineError(f"tritonserver refused {path}: {first[:300]}") from None  # its log has the traceback
        except (urllib.error.URLError, OSError) as exc:
            raise EngineError(f"tritonserver did not answer {path}: {exc}") from None

    def model_states(self) -> dict[str, str]:
        """Each model of the repository and its state (READY, UNLOADING, UNAVAILABLE, …)."""
        index = json.loads(self._post("/v2/repository/index", timeout=10))
        return {entry["name"]: entry.get("state", "UNAVAILABLE") for entry in index}

    def model_ready(self, name: str) -> bool | None:
        """Whether Triton says ``name`` is ready; None when it did not answer (busy, stopping): a
        slow answer under load is not a verdict on the model."""
        try:
            with urllib.request.urlopen(f"http://{self.http_url}/v2/models/{name}/ready", timeout=2) as response:
                return response.status == 200
        except urllib.error.HTTPError:
            return False  # it answered: not ready
        except (urllib.error.URLError, OSError):
            return None

    def reload_model(self, name: str) -> None:
        """Unload ``name`` and load it again: new instances, new python stubs. (A plain load of a
        model that is loaded and unchanged does nothing, stubs dead or not.)"""
        self._post(f"/v2/repository/models/{name}/unload", timeout=10)
        self._post(f"/v2/repository/models/{name}/load", timeout=self.ready_timeout)  # returns once loaded
        if self.model_ready(name) is False:
            raise EngineError(f"{name} was loaded again but is not ready: {self.failure()}")

    def wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                raise self.failed(f"tritonserver exited with code {code} before it was ready: {self.failure()}")
            if self.ready():
                return
            time.sleep(0.25)
        raise self.failed(f"tritonserver was not ready after {self.ready_timeout:.0f} s: {self.failure()}")

    def failure(self) -> str:
        """The server's first error line (its log says more), or where its log went."""
        return self.log.first_error()

    def failed(self, message: str) -> ServerFailed:
        """``message`` with the log's last lines, read now (a scratch log goes when the server stops)."""
        return self.log.failed(message)

    def stop(self) -> None:
        """SIGINT to the server (it unloads its models, which stops their python stubs, and
        exits), then SIGKILL for whatever of its process group is still there."""
        process = self.process
        if process is not None:
            regions = self._shared_memory_regions(process.pid)
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=STOP_TIMEOUT_S + 5)
            except (subprocess.TimeoutExpired, KeyboardInterrupt, Interrupted):  # a second Ctrl-C: no more waiting
                pass
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)
            for region in regions:  # a clean exit removes them; a killed server's would stay in /dev/shm
                with contextlib.suppress(OSError):
                    region.unlink()
            self.process = None
        self.log.close()
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None

    @staticmethod
    def _shared_memory_regions(group: int) -> list[Path]:
        """The shared-memory files of the python stubs in the server's process group."""
        return [stub.region for stub in python_stubs(group) if stub.region is not None]

    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
