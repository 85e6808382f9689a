"""What a report must say about where it was produced: versions, machine (CPU model and
cores, GPUs), git commit. Read without importing torch or any runtime."""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from facebatch.core.version import __version__
from facebatch.core.words import counted

PACKAGES = (
    "torch",
    "onnx",
    "onnxruntime",
    "onnxruntime-gpu",
    "openvino",
    "tensorrt",
    "polygraphy",
    "onnxsim",
    "onnxscript",
    "numpy",
    "opencv-python-headless",
    "opencv-python",
    "matplotlib",
    "insightface",
    "nvidia-pytriton",
    "tritonclient",
)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            if name in ("torch", "onnx", "onnxruntime", "numpy"):  # required: say so when absent
                versions[name] = "not installed"
    return versions


def git_commit() -> str | None:
    try:
        root = Path(__file__).resolve().parent.parent
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def usable_cpus() -> int:
    """Logical CPUs this process may run on (its affinity, e.g. a container's limit)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def physical_cores() -> int:
    """Distinct physical cores among the usable CPUs (hyper-threads counted once): the thread
    count a CPU runtime is given by default."""
    cores = set()
    try:
        cpus = os.sched_getaffinity(0)
    except AttributeError:
        return usable_cpus()
    for cpu in cpus:
        topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            cores.add(
                (
                    topology.joinpath("physical_package_id").read_text().strip(),
                    topology.joinpath("core_id").read_text().strip(),
                )
            )
        except OSError:
            return len(cpus)
    return len(cores) or len(cpus)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


INT8_CPU_CLASSES = ("vnni", "avx2", "baseline")


def int8_cpu_class(flags: set[str] | None = None) -> str:
    """Which integer kernels onnxruntime runs INT8 convolutions with here: ``vnni`` (AVX-512 VNNI or
    AVX-VNNI: u8·s8 products summed in 32 bits), ``avx2`` (u8·s8 pairs summed in 16 bits first,
    which can saturate) or ``baseline``. INT8 files are made and judged per class."""
    flags = cpu_flags() if flags is None else flags
    if flags & {"avx512_vnni", "avx_vnni", "amx_int8"}:
        return "vnni"
    return "avx2" if "avx2" in flags else "baseline"


def cpu_clock_ghz() -> float | None:
    """The clock /proc/cpuinfo reports (the highest over the CPUs; a VM shows its base clock)."""
    try:
        clocks = [
            float(line.split(":", 1)[1])
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("cpu MHz")
        ]
    except (OSError, ValueError):
        return None
    return max(clocks) / 1000 if clocks else None


def _cpuinfo_field(name: str) -> str:
    """The first value of ``name`` in /proc/cpuinfo ("" where there is none)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.split(":", 1)[0].strip() == name:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def cpu_vendor() -> str:
    return _cpuinfo_field("vendor_id")


def cpu_family() -> int | None:
    """The x86 CPU family (AMD: 25 is Zen 3/4, 26 is Zen 5), None where /proc/cpuinfo does not say."""
    value = _cpuinfo_field("cpu family")
    return int(value) if value.isdigit() else None


@dataclass(frozen=True)
class PeakEstimate:
    """This CPU's FP32 peak: cores × clock × FLOPs per cycle per core, the last from the widest vector
    unit and two FMA pipes per core (Intel AVX-512: 2 × 16 lanes × 2; AMD Zen 4's AVX-512 runs on
    256-bit pipes: 2 × 8 × 2, Zen 5 on 512-bit ones: 2 × 16 × 2; AVX2 + FMA: 2 × 8 × 2; otherwise SSE: 2 × 4), or, where more, the FP32
    GEMM rate measured on the same cores (``measured_gemm``): a VM reports its base clock, and on the
    2-core EPYC here onnxruntime's GEMM ran 200 GFLOP/s against a nominal 166 at the 2.6 GHz reported,
    so the nominal figure alone would put a model above 100 %."""

    cores: int
    ghz: float
    flops_per_cycle: int
    vector: str
    measured_gemm: float | None = None  # FLOP/s of a large FP32 matrix product at ``cores`` threads
    # ops/s of a large 8-bit integer product (this CPU class's INT8 kernel): what INT8 models are set against
    measured_int8_gemm: float | None = None

    @property
    def nominal_flops_per_second(self) -> float:
        return self.cores * self.ghz * 1e9 * self.flops_per_cycle

    @property
    def flops_per_second(self) -> float:
        return max(self.nominal_flops_per_second, self.measured_gemm or 0.0)

    @property
    def measured_is_peak(self) -> bool:
        """Whether the measured FP32 product beat the nominal figure (and so is the peak)."""
        return self.measured_gemm is not None and self.measured_gemm > self.nominal_flops_per_second

    def share(self, ops: float, per_second: float, precision: str = "fp32", fp32_ops: float = 0.0) -> float | None:
        """The fraction of the ceiling for ``precision`` that ``ops`` operations (FLOPs per frame, say)
        ``per_second`` times a second use; None where that ceiling was not measured. ``fp32_ops``: the
        part of an INT8 model's ``ops`` that its recipe keeps in FP32, set against the FP32 peak (the
        share is then the time the two ceilings allow over the time taken)."""
        ceiling = self.ops_per_second(precision)
        if ceiling is None:
            return None
        if "int8" not in precision or not fp32_ops:
            return ops * per_second / ceiling
        return ((ops - fp32_ops) / ceiling + fp32_ops / self.flops_per_second) * per_second

    def ops_per_second(self, precision: str) -> float | None:
        """The ceiling a model of ``precision`` runs against: INT8 the measured integer product (None where
        not measured: no nominal INT8 figure is guessed), everything else (FP16 computes in FP32 on a CPU)
        the FP32 peak."""
        return self.measured_int8_gemm if "int8" in precision else self.flops_per_second

    def describe(self) -> str:
        int8 = (
            f"; INT8 models against the {self.measured_int8_gemm / 1e9:.0f} GOPS a 1024² 8-bit integer product measured"
            if self.measured_int8_gemm
            else ""
        )
        return self._describe_fp32() + int8

    def _describe_fp32(self) -> str:
        nominal = (
            f"{counted(self.cores, 'core')} × {self.ghz:.2f} GHz × {self.flops_per_cycle} FLOP/cycle ({self.vector}, 2 FMA pipes "
            "assumed)"
        )
        if self.measured_is_peak:
            return (
                f"FP32 peak {self.flops_per_second / 1e9:.0f} GFLOP/s, measured: a 1024² FP32 matrix product on "
                f"{counted(self.cores, 'thread')}, above the nominal {self.nominal_flops_per_second / 1e9:.0f} = {nominal}, "
                "whose clock is the one the CPU reports (a VM's base clock)"
            )
        measured = (
            f"; a 1024² FP32 matrix product measured {self.measured_gemm / 1e9:.0f}" if self.measured_gemm else ""
        )
        return f"estimated FP32 peak {self.flops_per_second / 1e9:.0f} GFLOP/s = {nominal}{measured}; an estimate"

    def to_dict(self) -> dict[str, object]:
        return {
            "gflops_per_second": self.flops_per_second / 1e9,
            "nominal_gflops_per_second": self.nominal_flops_per_second / 1e9,
            "measured_gemm_gflops_per_second": self.measured_gemm / 1e9 if self.measured_gemm else None,
            "measured_int8_gemm_gops_per_second": self.measured_int8_gemm / 1e9 if self.measured_int8_gemm else None,
            "cores": self.cores,
            "ghz": self.ghz,
            "flops_per_cycle": self.flops_per_cycle,
            "vector": self.vector,
            "estimate": not self.measured_is_peak,
        }


ZEN5_FAMILY = 26  # AMD family 1Ah


def estimated_peak(cores: int | None = None, flags: set[str] | None = None) -> PeakEstimate | None:
    """This CPU's estimated FP32 peak (None where its clock is not known)."""
    ghz = cpu_clock_ghz()
    if ghz is None:
        return None
    flags = cpu_flags() if flags is None else flags
    if "avx512f" in flags and cpu_vendor() != "AuthenticAMD":
        per_cycle, vector = 64, "AVX-512"
    elif "avx512f" in flags and (cpu_family() or 0) >= ZEN5_FAMILY:
        # server Zen 5 runs AVX-512 on full 512-bit pipes: one core's GEMM measured 269 GFLOP/s at a reported
        # 2.6 GHz here, 3.2x what 256-bit pipes would allow at that clock (1.6x with these, boost clock)
        per_cycle, vector = 64, "AVX-512 (Zen 5)"
    elif "avx512f" in flags:
        per_cycle, vector = 32, "AVX-512 on 256-bit pipes"
    elif {"avx2", "fma"} <= flags:
        per_cycle, vector = 32, "AVX2 + FMA"
    else:
        per_cycle, vector = 8, "SSE"
    return PeakEstimate(cores or physical_cores(), ghz, per_cycle, vector)


def gpus() -> list[dict[str, str]]:
    """NVIDIA GPUs as nvidia-smi names them: name, driver, compute capability, memory."""
    if shutil.which("nvidia-smi") is None:
        return []
    query = ["nvidia-smi", "--query-gpu=name,driver_version,compute_cap,memory.total", "--format=csv,noheader"]
    try:
        out = subprocess.run(query, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return []
    if out.returncode != 0:
        return []
    keys = ("name", "driver", "compute_capability", "memory")
    return [
        dict(zip(keys, (field.strip() for field in line.split(",")), strict=False))
        for line in out.stdout.strip().splitlines()
        if line.strip()
    ]


def environment() -> dict[str, object]:
    return {
        "facebatch": __version__,
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "int8_cpu_class": int8_cpu_class(),
        "physical_cores": physical_cores(),
        "usable_cpus": usable_cpus(),
        "gpus": gpus(),
        "packages": package_versions(),
    }


def describe_environment(env: dict) -> list[str]:
    """A captured environment as lines for people (reports)."""
    if not env:
        return []
    cores = (
        f", {env['physical_cores']} physical cores ({env['usable_cpus']} usable CPUs)"
        if "physical_cores" in env
        else ""
    )
    lines = [
        f"facebatch {env.get('facebatch')} (git {env.get('git_commit') or 'unknown'}), Python {env.get('python')}",
        f"{env.get('platform')}; CPU {env.get('cpu')}{cores}",
    ]
    for gpu in env.get("gpus") or []:
        lines.append(
            f"GPU {gpu.get('name')}, driver {gpu.get('driver')}, compute capability {gpu.get('compute_capability')}, {gpu.get('memory')}"
        )
    packages = env.get("packages", {})
    if packages:
        lines.append(", ".join(f"{name} {version}" for name, version in packages.items()))
    return lines
