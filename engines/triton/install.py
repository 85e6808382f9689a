"""The tritonserver to run and the python environment its python-backend models run in.

The server is the one on PATH, or the one the ``nvidia-pytriton`` wheel ships (extra ``serve``): a
real Triton build with the python backend. That one needs its python stub for the interpreter the
models run in put beside the backend (``backend_directory``), its bundled libraries on
``LD_LIBRARY_PATH``, and the python environment's ``bin`` first on ``PATH`` (the stub's interpreter
then imports that environment's packages: facebatch, onnxruntime, OpenCV); and it runs python models
only (``check_backends``). A tritonserver that cannot keep its admin APIs behind a key is refused
(``can_restrict``).
"""

from __future__ import annotations

import functools
import importlib.util
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from facebatch.core.errors import SpecError

PYTRITON_HINT = (
    "pip install --no-deps 'nvidia-pytriton>=0.7' (the Makefile's serve set-up), or put tritonserver on PATH"
)
# The python stub inside nvidia-pytriton 0.7 (tritonserver 2.51) was built for numpy 1: under numpy 2 it
# hands the models arrays with the wrong values. Its models need an environment with numpy<2.
PYTRITON_NUMPY_MAJOR = 1
SERVE_ENV_HINT = "'make serve-env' makes one in .venv-serve"
# tritonserver's own flags that keep its admin APIs behind a header (HTTP and gRPC)
RESTRICTING_FLAGS = ("--http-restricted-api", "--grpc-restricted-protocol")


@functools.cache
def can_restrict(binary: str, environment: tuple[tuple[str, str], ...]) -> bool:
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
    # the folder of the interpreter's own libpython, where it has one beside its standard library (pyenv, a
    # source build): the stub must load that one, not the system's of the same minor version, whose symbols the
    # environment's compiled modules may outgrow (3.11.7's _ssl needs _PyModule_Add, which Debian's 3.11.2 lacks)
    libpython: Path | None = None

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
            f"python_env {prefix} is not a python environment (no bin/python3); pass a virtualenv with facebatch",
            field="python_env",
        )
    probe = (
        "import sys, sysconfig, numpy, facebatch.engines.triton.python_models; "
        "print(f'{sys.version_info[0]}.{sys.version_info[1]}', numpy.__version__, sysconfig.get_config_var('LIBDIR'))"
    )
    result = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise SpecError(
            f"python_env {prefix} cannot import facebatch's Triton models ({last}); install facebatch there, or "
            f"use another: {SERVE_ENV_HINT}",
            field="python_env",
        )
    version, numpy_version, libdir = result.stdout.split(maxsplit=2)
    return PythonEnv(prefix, version, numpy_version, _own_libpython(Path(libdir.strip()), version))


def _own_libpython(libdir: Path, version: str) -> Path | None:
    """``libdir`` when it holds the shared libpython of ``version`` (a system interpreter's sits in a multiarch
    folder the loader searches anyway: None)."""
    return libdir if (libdir / f"libpython{version}.so.1.0").is_file() else None


def python_stub(install: TritonInstall, env: PythonEnv) -> Path:
    """nvidia-pytriton's python stub for ``env``'s interpreter, refused where it would misread the models' arrays."""
    assert install.stubs is not None
    stub = install.stubs / env.version / "triton_python_backend_stub"
    if not stub.is_file():
        versions = sorted(p.name for p in install.stubs.iterdir() if p.is_dir())
        raise SpecError(
            f"nvidia-pytriton has no python stub for Python {env.version} (it has {', '.join(versions)}); "
            "pass a python_env with one of those versions",
            field="python_env",
        )
    if int(env.numpy.split(".")[0]) > PYTRITON_NUMPY_MAJOR:
        raise SpecError(
            f"the python stub of nvidia-pytriton's tritonserver misreads numpy 2 arrays, and the python_env "
            f"{env.prefix} has numpy {env.numpy}; run its models in an environment with numpy<2: {SERVE_ENV_HINT}",
            field="python_env",
        )
    return stub


def backend_directory(install: TritonInstall, stub: Path, scratch: Path) -> Path:
    """nvidia-pytriton's backends with ``stub`` beside the python backend, as symlinks in ``scratch`` (the
    wheel's own files are not touched)."""
    assert install.backends is not None
    backends = scratch / "backends"
    for backend in install.backends.iterdir():
        if backend.is_dir():
            (backends / backend.name).mkdir(parents=True)
            for item in backend.iterdir():
                if item.name != "__pycache__":
                    (backends / backend.name / item.name).symlink_to(item)
    (backends / "python" / stub.name).symlink_to(stub)
    return backends


def check_backends(install: TritonInstall, repository: Path) -> None:
    """nvidia-pytriton's build carries the python backend only: a repository of onnxruntime or TensorRT
    models is refused up front, saying what would run it."""
    if not install.bundled:
        return
    others = sorted(
        p.name
        for p in Path(repository).iterdir()
        if (p / "config.pbtxt").is_file() and 'backend: "python"' not in (p / "config.pbtxt").read_text()
    )
    if others:
        raise SpecError(
            f"repository {repository}: nvidia-pytriton's tritonserver has the python backend only, and "
            f"{', '.join(others)} need another; write the repository again with the python runtime, or serve it "
            "with NVIDIA's container (its README.md has the command)",
            field="repository",
        )
