"""Start, watch and stop a real ``tritonserver`` on a model repository.

The server is the one on PATH, or the one the ``nvidia-pytriton`` wheel ships (extra
``serve``): a real Triton build with the python backend. That one needs its python stub for
the interpreter the models run in put beside the backend, its bundled libraries on
``LD_LIBRARY_PATH``, and the python environment's ``bin`` first on ``PATH`` (the stub's
interpreter then imports that environment's packages: facebatch, onnxruntime, OpenCV).

    with TritonServer(repository, ServerPorts(8000, 8001, 8002)) as server:
        server.http_url  # ready: every model loaded

Leaving the block (or Ctrl-C in ``facebatch serve``) stops the server and every process it
started; nothing is left running.

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
import functools
import importlib.util
import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from facebatch.core.errors import EngineError, SpecError
from facebatch.engines.triton.settings import (
    DEFAULT_ADDRESS,
    KEY_HEADER,
    MANIFEST,
    READY_TIMEOUT_S,
    RESTRICTED_APIS,
    STOP_TIMEOUT_S,
)
from facebatch.engines.triton.stubs import python_stubs

PYTRITON_HINT = (
    "pip install --no-deps 'nvidia-pytriton>=0.7' (the Makefile's serve set-up), or put tritonserver on PATH"
)
# The python stub inside nvidia-pytriton 0.7 (tritonserver 2.51) was built for numpy 1: under numpy 2 it
# hands the models arrays with the wrong values. Its models need an environment with numpy<2.
PYTRITON_NUMPY_MAJOR = 1
SERVE_ENV_HINT = "'make serve-env' makes one in .venv-serve; pass it with --python-env .venv-serve"
# tritonserver prefixes the header of --grpc-restricted-protocol with this on gRPC (metadata keys)
GRPC_KEY_PREFIX = "triton-grpc-protocol-"
RESTRICTING_FLAGS = ("--http-restricted-api", "--grpc-restricted-protocol")


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


@functools.cache
def _can_restrict(binary: str, environment: tuple[tuple[str, str], ...]) -> bool:
    """Whether ``binary``'s --help names both restricting flags (asked once per binary and environment: every
    server a process starts would otherwise run it again)."""
    try:
        usage = subprocess.run(
            [binary, "--help"], env=dict(environment), capture_output=True, text=True, check=False, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return all(flag in usage.stdout + usage.stderr for flag in RESTRICTING_FLAGS)


@dataclass(frozen=True)
class TritonInstall:
    """A tritonserver binary and what it needs to run python models."""

    binary: Path
    source: str  # "PATH" or "nvidia-pytriton"
    backends: Path | None = None  # nvidia-pytriton: its backends folder (the stub is added per interpreter)
    libraries: Path | None = None  # nvidia-pytriton: its bundled shared libraries
    stubs: Path | None = None  # nvidia-pytriton: python stubs per interpreter version

    @property
    def bundled(self) -> bool:
        return self.source == "nvidia-pytriton"


def find_tritonserver() -> TritonInstall:
    """tritonserver from PATH, else the one inside nvidia-pytriton (found without importing
    pytriton, whose own imports need packages we do not)."""
    on_path = shutil.which("tritonserver")
    if on_path:
        return TritonInstall(Path(on_path), "PATH")
    spec = importlib.util.find_spec("pytriton")
    if spec is not None and spec.submodule_search_locations:
        root = Path(next(iter(spec.submodule_search_locations)))
        binary = root / "tritonserver" / "bin" / "tritonserver"
        if binary.is_file():
            return TritonInstall(
                binary,
                "nvidia-pytriton",
                root / "tritonserver" / "backends",
                root.parent / "nvidia_pytriton.libs",
                root / "tritonserver" / "python_backend_stubs",
            )
    raise SpecError(f"no tritonserver here: {PYTRITON_HINT}")


@dataclass(frozen=True)
class PythonEnv:
    """The interpreter the python-backend models run in: a virtualenv or prefix with facebatch."""

    prefix: Path
    version: str  # "3.11"
    numpy: str

    @property
    def bin(self) -> Path:
        return self.prefix / "bin"


def python_env(prefix: Path | None = None) -> PythonEnv:
    """Describe ``prefix`` (default: the running interpreter's environment), refusing one that
    cannot run facebatch's models."""
    prefix = Path(prefix) if prefix is not None else Path(sys.prefix)
    python = prefix / "bin" / "python3"
    if not python.exists():
        raise SpecError(
            f"{prefix} is not a python environment (no bin/python3); pass a virtualenv with facebatch as --python-env"
        )
    probe = "import sys, numpy, facebatch.engines.triton.python_models; print(f'{sys.version_info[0]}.{sys.version_info[1]}', numpy.__version__)"
    result = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise SpecError(
            f"the python environment {prefix} cannot import facebatch's Triton models ({last}); install facebatch "
            f"there, or {SERVE_ENV_HINT}"
        )
    version, numpy_version = result.stdout.split()
    return PythonEnv(prefix, version, numpy_version)


@dataclass(frozen=True)
class ServerPorts:
    http: int
    grpc: int
    metrics: int | None = None  # None: no metrics endpoint

    def named(self) -> list[tuple[str, int]]:
        ports = [("--http-port", self.http), ("--grpc-port", self.grpc)]
        return ports + ([("--metrics-port", self.metrics)] if self.metrics is not None else [])


def check_ports_free(ports: ServerPorts, address: str) -> None:
    """A busy port is refused up front, naming the flag that moves it (tritonserver would start,
    fail to bind and exit with less to say)."""
    seen = set()
    for flag, port in ports.named():
        if not 0 < port < 65536:
            raise SpecError(f"{flag} {port} is not a port number")
        if port in seen:
            raise SpecError(f"{flag} {port} is also given to another endpoint; give each its own port")
        seen.add(port)
    for flag, port in ports.named():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((address, port))
            except OSError:
                raise SpecError(f"port {port} on {address} is in use; pass another {flag}") from None


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


def check_repository(repository: Path) -> None:
    repository = Path(repository)
    if not repository.is_dir():
        raise SpecError(
            f"model repository {repository} does not exist; write one with 'facebatch triton ARTIFACT... --out {repository}'"
        )
    if not any(p.is_dir() and (p / "config.pbtxt").is_file() for p in repository.iterdir()):
        hint = "" if (repository / MANIFEST).is_file() else "; write one with 'facebatch triton'"
        raise SpecError(f"{repository} holds no model (no */config.pbtxt){hint}")


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
    ) -> None:
        self.repository = Path(repository).resolve()
        self.ports = ports
        self.address = address
        self.install = install or find_tritonserver()
        self.env = env or python_env()
        self.log_file = log_file  # None: the server writes to this process's terminal
        self.ready_timeout = ready_timeout
        self.process: subprocess.Popen | None = None
        self._scratch: tempfile.TemporaryDirectory | None = None
        self._log = None
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

    # -- set-up ---------------------------------------------------------------------------------------
    def _backend_directory(self) -> Path | None:
        """nvidia-pytriton's backends with the python stub for our interpreter beside the backend
        (symlinks in a scratch folder; the wheel's own files are not touched)."""
        install = self.install
        if not install.bundled:
            return None
        assert install.backends is not None and install.stubs is not None
        stub = install.stubs / self.env.version / "triton_python_backend_stub"
        if not stub.is_file():
            versions = sorted(p.name for p in install.stubs.iterdir() if p.is_dir())
            raise SpecError(
                f"nvidia-pytriton has no python stub for Python {self.env.version} (it has {', '.join(versions)}); "
                "pass a --python-env with one of those versions"
            )
        if int(self.env.numpy.split(".")[0]) > PYTRITON_NUMPY_MAJOR:
            raise SpecError(
                f"the python stub of nvidia-pytriton's tritonserver misreads numpy 2 arrays, and {self.env.prefix} has "
                f"numpy {self.env.numpy}; run its models in an environment with numpy<2: {SERVE_ENV_HINT}"
            )
        self._scratch = tempfile.TemporaryDirectory(prefix="facebatch-triton-")
        backends = Path(self._scratch.name) / "backends"
        for backend in install.backends.iterdir():
            if backend.is_dir():
                (backends / backend.name).mkdir(parents=True)
                for item in backend.iterdir():
                    if item.name != "__pycache__":
                        (backends / backend.name / item.name).symlink_to(item)
        (backends / "python" / stub.name).symlink_to(stub)
        return backends

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
        if self.install.libraries is not None:
            env["LD_LIBRARY_PATH"] = os.pathsep.join(
                p for p in (env.get("LD_LIBRARY_PATH", ""), str(self.install.libraries)) if p
            )
        env.pop("PYTHONPATH", None)  # the stub imports what the python environment has, nothing else
        return env

    # -- life cycle ---------------------------------------------------------------------------------
    def check_restrictable(self) -> None:
        """A tritonserver that cannot restrict its admin APIs (before 2.40, NGC 23.11) is refused: with
        explicit model control every client could load code into it."""
        if not _can_restrict(str(self.install.binary), tuple(sorted(self.environment().items()))):
            raise SpecError(
                f"{self.install.binary} has no {' or '.join(RESTRICTING_FLAGS)}, so every client could load a model "
                "into it; use tritonserver 2.40 (NGC 23.11) or newer, better the current release"
            )

    def check_backends(self) -> None:
        """nvidia-pytriton's build carries the python backend only: a repository of onnxruntime
        or TensorRT models is refused up front, saying what would run it."""
        if not self.install.bundled:
            return
        others = sorted(
            p.name
            for p in self.repository.iterdir()
            if (p / "config.pbtxt").is_file() and 'backend: "python"' not in (p / "config.pbtxt").read_text()
        )
        if others:
            raise SpecError(
                f"nvidia-pytriton's tritonserver has the python backend only, and {', '.join(others)} need another; write "
                "the repository with 'facebatch triton --runtime python', or serve it with NVIDIA's container "
                "(its README.md has the command)"
            )

    def start(self) -> TritonServer:
        check_repository(self.repository)
        self.check_backends()
        self.check_restrictable()
        check_ports_free(self.ports, self.address)
        backends = self._backend_directory()
        output = None
        if self.log_file is not None:
            self._log = open(self.log_file, "wb")  # open as long as the server runs
            output = self._log
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
                raise EngineError(f"tritonserver exited with code {code} before it was ready: {self.failure()}")
            if self.ready():
                return
            time.sleep(0.25)
        raise EngineError(f"tritonserver was not ready after {self.ready_timeout:.0f} s: {self.failure()}")

    def failure(self) -> str:
        """The server's first error line (its log says more), or where its log went."""
        if self.log_file is None:
            return "its log is above"
        if self._log is not None:
            self._log.flush()
        lines = Path(self.log_file).read_text(errors="replace").splitlines()
        noise = ("CudaDriverHelper", "Unable to allocate pinned system memory", "GPU metrics")
        errors = [line for line in lines if line[:1] == "E" and not any(n in line for n in noise)]
        errors += [line for line in lines if "error:" in line.lower() and line not in errors]
        return f"{(errors or lines or ['no output'])[0].strip()[:400]} (log: {self.log_file})"

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
            except (subprocess.TimeoutExpired, KeyboardInterrupt):  # a second Ctrl-C: no more waiting
                pass
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)
            for region in regions:  # a clean exit removes them; a killed server's would stay in /dev/shm
                with contextlib.suppress(OSError):
                    region.unlink()
            self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None
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
