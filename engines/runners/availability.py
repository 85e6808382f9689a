"""What this machine can run on, read once: which onnxruntime package is installed (exactly
one, or a one-line refusal naming the fix), which of its execution providers can really start
(listed is not enough: onnxruntime-gpu lists CUDA on a machine without a GPU and then falls
back to the CPU with a C++ error on stderr), the CUDA GPUs nvidia-smi sees, and the TensorRT and
Polygraphy versions. ``Runtimes`` is plain data: the backend checks take one, so that a test
states the machine it means instead of depending on the one it runs on.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from facebatch.core.environment import gpus
from facebatch.core.errors import SpecError

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT_EP = "TensorrtExecutionProvider"
# Distributions that each install the importable package onnxruntime (two of them overwrite each other's files)
ONNXRUNTIME_DISTRIBUTIONS = (
    "onnxruntime",
    "onnxruntime-gpu",
    "onnxruntime-openvino",
    "onnxruntime-directml",
    "onnxruntime-rocm",
    "onnxruntime-qnn",
    "onnxruntime-training",
    "ort-nightly",
    "ort-nightly-gpu",
)
ONE_RUNTIME = "pip install 'facebatch[cpu]' (onnxruntime) or 'facebatch[gpu]' (onnxruntime-gpu), not both"
# the shared library behind each GPU provider, in onnxruntime/capi/, and what it needs besides the driver
PROVIDER_LIBRARIES = {
    CUDA: ("libonnxruntime_providers_cuda.so", "CUDA 12 and cuDNN 9 (pip install 'onnxruntime-gpu[cuda,cudnn]')"),
    TENSORRT_EP: ("libonnxruntime_providers_tensorrt.so", "TensorRT's libraries (pip install 'facebatch[tensorrt]')"),
}


def installed_onnxruntimes() -> dict[str, str]:
    """Each installed distribution that provides the onnxruntime package, with its version."""
    found = {}
    for name in ONNXRUNTIME_DISTRIBUTIONS:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def onnxruntime_install_problem(installed: dict[str, str]) -> str | None:
    """None for exactly one onnxruntime distribution; else the one line that says what to change."""
    if not installed:
        return f"onnxruntime is not installed: {ONE_RUNTIME}"
    if len(installed) == 1:
        return None
    listed = ", ".join(f"{name} {v}" for name, v in installed.items())
    return (
        f"{len(installed)} onnxruntime packages are installed ({listed}) and overwrite each other's files: "
        f"pip uninstall -y {' '.join(installed)}, then {ONE_RUNTIME}"
    )


@functools.cache
def check_onnxruntime_install() -> str:
    """The one onnxruntime distribution installed here; a ``SpecError`` on none or a mix."""
    installed = installed_onnxruntimes()
    problem = onnxruntime_install_problem(installed)
    if problem:
        raise SpecError(problem)
    return next(iter(installed))


def _library_error(library: str) -> str | None:
    """Why the provider library does not load here (a missing CUDA/cuDNN/TensorRT library), or None."""
    spec = importlib.util.find_spec("onnxruntime")
    if spec is None or spec.origin is None:
        return "onnxruntime is not installed"
    path = Path(spec.origin).parent / "capi" / library
    if not path.is_file():
        return f"this onnxruntime has no {library}"
    try:
        ctypes.CDLL(str(path))
    except OSError as exc:
        return str(exc).strip().splitlines()[0]
    return None


def _version_of(*distributions: str) -> str | None:
    for name in distributions:
        try:
            return version(name)
        except PackageNotFoundError:
            continue
    return None


@dataclass(frozen=True)
class Runtimes:
    """The machine as the backends see it."""

    onnxruntime: dict[str, str] = field(default_factory=dict)  # distribution → version
    ort_providers: tuple[str, ...] = (CPU,)  # what onnxruntime lists
    cuda_devices: tuple[str, ...] = ()  # GPU names, as nvidia-smi gives them
    provider_errors: dict[str, str] = field(default_factory=dict)  # listed GPU provider → why it cannot start
    tensorrt: str | None = None  # the tensorrt package's version, where it and Polygraphy are importable
    polygraphy: str | None = None

    @classmethod
    def cpu_only(cls) -> Runtimes:
        """A machine with the CPU onnxruntime and nothing for the GPU (what the CPU tests describe)."""
        return cls(onnxruntime={"onnxruntime": "any"})

    def provider_problem(self, provider: str) -> str | None:
        """None when ``provider`` can start here; else why not, in words that say what to change."""
        if provider == CPU:
            return None
        if provider not in self.ort_providers:
            return f"this onnxruntime ({', '.join(self.onnxruntime) or 'none'}) lacks {provider}"
        if not self.cuda_devices:
            return f"{provider} needs a CUDA GPU, and nvidia-smi sees none here"
        if provider in self.provider_errors:
            library, needs = PROVIDER_LIBRARIES[provider]
            return f"onnxruntime cannot load {library} ({self.provider_errors[provider]}): it needs {needs}"
        return None

    def tensorrt_problem(self) -> str | None:
        if self.tensorrt is None or self.polygraphy is None:
            missing = " and ".join(
                n for n, v in (("TensorRT", self.tensorrt), ("Polygraphy", self.polygraphy)) if not v
            )
            return f"{missing} {'is' if ' and ' not in missing else 'are'} not installed here"
        if not self.cuda_devices:
            return "TensorRT needs a CUDA GPU, and nvidia-smi sees none here"
        return None

    def to_dict(self) -> dict[str, object]:
        return {
            "onnxruntime": self.onnxruntime,
            "ort_providers": list(self.ort_providers),
            "cuda_devices": list(self.cuda_devices),
            "provider_errors": self.provider_errors,
            "tensorrt": self.tensorrt,
            "polygraphy": self.polygraphy,
        }


@functools.cache
def detect_runtimes() -> Runtimes:
    """This machine, read once per process (onnxruntime is imported; nothing is started)."""
    installed = installed_onnxruntimes()
    providers: tuple[str, ...] = ()
    if installed and onnxruntime_install_problem(installed) is None:
        import onnxruntime as ort

        providers = tuple(ort.get_available_providers())
    devices = tuple(g.get("name", "GPU") for g in gpus())
    errors = {}
    for provider, (library, _) in PROVIDER_LIBRARIES.items():
        if provider in providers and devices:
            error = _library_error(library)
            if error:
                errors[provider] = error
    tensorrt_importable = importlib.util.find_spec("tensorrt") is not None
    polygraphy_importable = importlib.util.find_spec("polygraphy") is not None
    return Runtimes(
        onnxruntime=installed,
        ort_providers=providers,
        cuda_devices=devices,
        provider_errors=errors,
        tensorrt=(_version_of("tensorrt", "tensorrt-cu13", "tensorrt-cu12") or "unknown")
        if tensorrt_importable
        else None,
        polygraphy=(_version_of("polygraphy") or "unknown") if polygraphy_importable else None,
    )
