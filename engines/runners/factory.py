"""The one runner factory: ``make_onnx_runner(backend, model, size, options)`` builds the runner that
runs an ONNX file on a backend, with its provider and options. Its signature is ``RunnerFactory``,
what bench and the face pipeline take; the exporter extends it with the torch backend
(``facebatch.exporter.backends.make_runner``), which needs the model rebuilt from its weights.

    ort-cpu    onnxruntime, CPU execution provider
    ort-cuda   onnxruntime, CUDA execution provider              (facebatch[gpu])
    ort-trt    onnxruntime, TensorRT execution provider: fp16, engine cache, the spec's batch profile
    openvino   OpenVINO on the CPU, f32 (bf16 where asked)       (facebatch[openvino])
    trt        the TensorRT engine built from the ONNX file (fp16, batch 1-32)
    torch      the exporter's: the artifact's PyTorch model (CUDA + FP16 autocast when present)

``check_backend`` refuses, before any work, a backend whose package is missing (naming what
to install) unless the fallback to the CPU is allowed. Thread counts are explicit: the
physical cores unless told otherwise, the same for onnxruntime and OpenVINO. The backends'
names and descriptions are ``backends.BACKENDS`` (light, for ``--help``).
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from facebatch.configs.model_file import ModelFile
from facebatch.configs.precision import Precision
from facebatch.configs.spec import ModelSpec
from facebatch.core.environment import file_sha256, physical_cores
from facebatch.core.errors import SpecError
from facebatch.engines.runners.availability import Runtimes, detect_runtimes
from facebatch.engines.runners.backends import BACKENDS
from facebatch.engines.runners.base import Runner
from facebatch.engines.runners.compile_cache import CompileCache, default_cache_folder, usable_folder
from facebatch.engines.runners.engine_record import STRONGLY_TYPED_FROM, tensorrt_major
from facebatch.engines.runners.onnxruntime_runner import CPU, OnnxRuntimeRunner

ORT_PROVIDERS = {"ort-cpu": CPU, "ort-cuda": "CUDAExecutionProvider", "ort-trt": "TensorrtExecutionProvider"}


@dataclass(frozen=True)
class RunnerOptions:
    threads: int | None = None  # None: the physical cores
    allow_fallback: bool = False  # a missing GPU provider runs on the CPU instead (and says so)
    trt_fp16: bool = True  # ort-trt: let TensorRT build fp16 kernels
    trt_cache: Path | None = None  # ort-trt: engine cache folder
    spin_wait: bool = (
        True  # onnxruntime's threads spin between calls; off when two sessions take turns (they would slow each other)
    )
    runtimes: Runtimes | None = None  # what the machine can run on; None: read from this one (detect_runtimes)
    compile_cache: bool = True  # openvino: keep compiled models between runs (engines/runners/compile_cache.py)
    bf16: bool = False  # openvino: compute in bfloat16 (the caller has checked each model's BF16 proof)
    bf16_files: frozenset[Path] = frozenset()  # openvino: these files compute in bfloat16 (each proven), the rest f32

    def __post_init__(self) -> None:
        if self.threads is not None and self.threads < 1:  # None is the default (the physical cores), 0 no value
            raise SpecError(f"threads must be at least 1, got {self.threads}", field="threads")

    @property
    def thread_count(self) -> int:
        return self.threads or physical_cores()

    def runs_bf16(self, model: ModelFile) -> bool:
        """Whether ``model`` computes in bfloat16: all models (``bf16``) or this file (``bf16_files``)."""
        return self.bf16 or model.path in self.bf16_files

    @property
    def here(self) -> Runtimes:
        return self.runtimes if self.runtimes is not None else detect_runtimes()


CPU_ADVICE = "backend ort-cpu"  # what a caller whose GPU provider is missing chooses instead


def backend_problem(name: str, here: Runtimes) -> str | None:
    """Why backend ``name`` cannot run on the machine ``here`` describes, naming what to install; None if it can."""
    backend = BACKENDS[name]
    if name == "trt":
        from facebatch.engines.runners.tensorrt_runner import TENSORRT_HINT

        problem = here.tensorrt_problem()
        return f"the trt backend runs TensorRT engines, and {problem}: {TENSORRT_HINT}" if problem else None
    if name == "openvino" and importlib.util.find_spec("openvino") is None:
        return f"the openvino backend needs the OpenVINO runtime: {backend.install}"
    if name in ("ort-cuda", "ort-trt"):
        provider = ORT_PROVIDERS[name]
        problem = here.provider_problem(provider)
        if problem is None:
            return None
        if provider not in here.ort_providers:  # "backend" is not said before the advice: the CLI names it a flag
            return f"{name} needs onnxruntime's {provider}, which this installation lacks: {backend.install}"
        return f"{name} cannot start here: {problem}"
    return None


def check_backend(name: str, options: RunnerOptions) -> None:
    """Refuse a backend that cannot run here, naming what to install or the CPU backend to choose instead
    (unless a fallback to the CPU is allowed for an onnxruntime GPU provider: the runner then starts the CPU
    quietly and says so). The advice is the backend, which every caller chooses: only bench offers the fallback."""
    problem = backend_problem(name, options.here)
    if problem is None:
        return
    if name in ("ort-cuda", "ort-trt"):
        if options.allow_fallback:
            return
        raise SpecError(f"{problem}; or run on the CPU: {CPU_ADVICE}", field="backend")
    raise SpecError(problem)


def _trt_options(
    spec: ModelSpec, size: tuple[int, int], options: RunnerOptions, tensorrt_version: str | None = None
) -> dict[str, object]:
    """TensorRT-EP options; the optimisation profile comes from the spec's batch range. TensorRT's FP16 flag only
    where it exists (TensorRT < 11) and only for an FP32 graph: TensorRT 11 builds every network strongly typed,
    so there FP16 comes from the FP16 artifact (the FP16 conversion), as in the engine build."""
    profile = spec.batch_profile(size)

    def shapes_at(which: int) -> str:  # 0 min, 1 opt, 2 max; "input.1:1x3x320x320"
        return ",".join(f"{name}:{'x'.join(map(str, min_opt_max[which]))}" for name, min_opt_max in profile.items())

    trt: dict[str, object] = {
        "trt_fp16_enable": ort_trt_fp16_flag(spec, options, tensorrt_version),
        "trt_profile_min_shapes": shapes_at(0),
        "trt_profile_opt_shapes": shapes_at(1),
        "trt_profile_max_shapes": shapes_at(2),
    }
    if options.trt_cache is not None:
        trt |= {"trt_engine_cache_enable": True, "trt_engine_cache_path": str(options.trt_cache)}
    return trt


def ort_trt_fp16_flag(spec: ModelSpec, options: RunnerOptions, tensorrt_version: str | None) -> bool:
    strongly_typed = tensorrt_version is not None and tensorrt_major(tensorrt_version) >= STRONGLY_TYPED_FROM
    return options.trt_fp16 and spec.precision is Precision.FP32 and not strongly_typed


def ort_trt_precision(spec: ModelSpec, options: RunnerOptions, tensorrt_version: str | None) -> str:
    """What the TensorRT provider computes in, said so that a table cannot pass FP32 off as FP16."""
    if spec.precision is not Precision.FP32:
        return f"{spec.precision.value} (TensorRT, as typed)"
    if ort_trt_fp16_flag(spec, options, tensorrt_version):
        return "fp16 (TensorRT)"
    if options.trt_fp16:
        return f"fp32 (TensorRT {tensorrt_version} builds as typed: run the _fp16.onnx for fp16)"
    return "fp32 (TensorRT)"


@functools.lru_cache(maxsize=4)  # one warning per folder that cannot be used, not one per runner
def _cache_folder(folder: Path) -> Path | None:
    return usable_folder(folder)


def _compile_cache(wanted: bool) -> CompileCache | None:
    folder = _cache_folder(default_cache_folder()) if wanted else None
    return CompileCache(folder) if folder is not None else None


def make_onnx_runner(backend: str, model: ModelFile, size: tuple[int, int], options: RunnerOptions) -> Runner:
    """The ``RunnerFactory`` of every backend that runs an ONNX file (all but torch, the exporter's): a
    runner for ``model`` at input ``size``, not yet active; trt runs the engine built from the file."""
    check_backend(backend, options)
    bf16 = options.runs_bf16(model)
    if bf16 and backend != "openvino":
        raise SpecError(f"precision bf16 runs on the openvino backend only, not on {backend}", field="precision")
    path, spec = model.path, model.spec
    if backend == "trt":
        from facebatch.engines.runners.engine_record import find_engine
        from facebatch.engines.runners.tensorrt_runner import TensorRtRunner

        return TensorRtRunner(find_engine(path, file_sha256(path), spec))
    if backend == "openvino":
        from facebatch.engines.runners.openvino_runner import OpenVinoRunner

        runner = OpenVinoRunner(
            path,
            threads=options.thread_count,
            cache=_compile_cache(options.compile_cache),
            precision="bf16" if bf16 else "f32",
        )
        if bf16:
            return runner  # its label says bf16
        if spec.precision is Precision.FP16:
            runner.precision = "fp16 weights, f32 compute"  # inference precision is pinned to f32
        elif spec.precision is Precision.INT8:
            runner.precision = "int8"  # OpenVINO runs a QDQ graph's quantised operators on its integer kernels
        return runner
    if backend not in ORT_PROVIDERS:
        raise SpecError(
            f"backend {backend} does not run ONNX files directly: it needs the model rebuilt from its weights "
            "(facebatch.exporter.backends.make_runner)",
            field="backend",
        )
    return _onnxruntime_runner(backend, path, spec, size, options)


def _onnxruntime_runner(
    backend: str, path: Path, spec: ModelSpec, size: tuple[int, int], options: RunnerOptions
) -> OnnxRuntimeRunner:
    """onnxruntime with the backend's providers (and the CPU behind them)."""
    here = options.here
    providers: Sequence = [CPU]
    by_provider = {}
    if backend == "ort-cuda":
        providers = ["CUDAExecutionProvider", CPU]
    elif backend == "ort-trt":
        providers = [
            ("TensorrtExecutionProvider", _trt_options(spec, size, options, here.tensorrt)),
            "CUDAExecutionProvider",
            CPU,
        ]
        by_provider["TensorrtExecutionProvider"] = ort_trt_precision(spec, options, here.tensorrt)
    if backend in ("ort-cuda", "ort-trt") and here.provider_problem(ORT_PROVIDERS[backend]) is not None:
        providers = [CPU]  # the fallback was allowed (check_backend): start the CPU, quietly, rather than fail loudly
    if (
        spec.precision is Precision.FP16
    ):  # the CPU provider has few FP16 kernels: it casts and computes in FP32 between FP16 weights
        by_provider.setdefault(CPU, "fp16 weights, fp32 compute")
    return OnnxRuntimeRunner(
        path,
        providers,
        intra_op_threads=options.thread_count,
        allow_fallback=options.allow_fallback,
        precision=spec.precision.value,
        install_hint=BACKENDS[backend].install,
        precision_by_provider=by_provider,
        spin_wait=options.spin_wait,
    )


# (backend, model, input size, options) → a runner, not yet active: what bench and the pipeline are given
RunnerFactory = Callable[[str, ModelFile, tuple[int, int], RunnerOptions], Runner]
