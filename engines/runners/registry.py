"""Backends by name: which runner runs an ONNX artifact, with which provider and options.

    ort-cpu    onnxruntime, CPU execution provider
    ort-cuda   onnxruntime, CUDA execution provider              (facebatch[gpu])
    ort-trt    onnxruntime, TensorRT execution provider: fp16, engine cache, the spec's batch profile
    openvino   OpenVINO on the CPU, f32                          (facebatch[openvino])
    torch      the artifact's PyTorch model, rebuilt by the exporter (CUDA + FP16 autocast when present)
    trt        the TensorRT engine ``facebatch build`` made from the artifact (fp16, batch 1-32)

``check_backend`` refuses, before any work, a backend whose package is missing (naming what
to install) unless the fallback to the CPU is allowed. Thread counts are explicit: the
physical cores unless told otherwise, the same for onnxruntime and OpenVINO.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from facebatch.configs.precision import Precision
from facebatch.configs.spec import ModelSpec
from facebatch.engines.runners.backends import BACKENDS
from facebatch.engines.runners.base import Runner
from facebatch.engines.runners.onnxruntime_runner import CPU, OnnxRuntimeRunner
from facebatch.environment import file_sha256, physical_cores
from facebatch.errors import SpecError

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

    @property
    def thread_count(self) -> int:
        return self.threads or physical_cores()


def check_backend(name: str, options: RunnerOptions) -> None:
    """Refuse a backend that cannot run here, naming what to install (unless a fallback is allowed)."""
    backend = BACKENDS[name]
    if name == "trt":
        from facebatch.engines.runners.tensorrt_runner import TENSORRT_HINT, tensorrt_available

        if not tensorrt_available():
            raise SpecError(
                f"the trt backend runs TensorRT engines, and TensorRT is not installed here: {TENSORRT_HINT}"
            )
    if name == "openvino" and importlib.util.find_spec("openvino") is None:
        raise SpecError(f"the openvino backend needs the OpenVINO runtime: {backend.install}")
    if name in ("ort-cuda", "ort-trt") and not options.allow_fallback:
        import onnxruntime as ort

        if ORT_PROVIDERS[name] not in ort.get_available_providers():
            raise SpecError(
                f"the {name} backend needs onnxruntime's {ORT_PROVIDERS[name]}, which this installation lacks: "
                f"{backend.install}; or pass --allow-fallback to run on the CPU"
            )


def _trt_options(spec: ModelSpec, size: tuple[int, int], options: RunnerOptions) -> dict[str, object]:
    """TensorRT-EP options; the optimisation profile comes from the spec's batch range."""
    profile = spec.batch_profile(size)

    def shapes_at(which: int) -> str:  # 0 min, 1 opt, 2 max; "input.1:1x3x320x320"
        return ",".join(f"{name}:{'x'.join(map(str, min_opt_max[which]))}" for name, min_opt_max in profile.items())

    trt: dict[str, object] = {
        "trt_fp16_enable": options.trt_fp16,
        "trt_profile_min_shapes": shapes_at(0),
        "trt_profile_opt_shapes": shapes_at(1),
        "trt_profile_max_shapes": shapes_at(2),
    }
    if options.trt_cache is not None:
        trt |= {"trt_engine_cache_enable": True, "trt_engine_cache_path": str(options.trt_cache)}
    return trt


def onnx_runner(name: str, path: Path, spec: ModelSpec, size: tuple[int, int], options: RunnerOptions) -> Runner:
    """A runner for an ONNX file on a backend that runs ONNX (every one but torch); trt runs
    the engine ``facebatch build`` made from it."""
    check_backend(name, options)
    threads = options.thread_count
    if name == "trt":
        from facebatch.engines.build.engine_record import find_engine
        from facebatch.engines.runners.tensorrt_runner import TensorRtRunner

        return TensorRtRunner(find_engine(path, file_sha256(path), spec))
    if name == "openvino":
        from facebatch.engines.runners.openvino_runner import OpenVinoRunner

        runner = OpenVinoRunner(path, threads=threads)
        if spec.precision is Precision.FP16:
            runner.precision = "fp16 weights, f32 compute"  # inference precision is pinned to f32
        return runner
    if name not in ORT_PROVIDERS:
        raise SpecError(f"the {name} backend does not run ONNX files directly")
    providers: Sequence = [CPU]
    by_provider = {}
    if name == "ort-cuda":
        providers = ["CUDAExecutionProvider", CPU]
    elif name == "ort-trt":
        providers = [("TensorrtExecutionProvider", _trt_options(spec, size, options)), "CUDAExecutionProvider", CPU]
        if options.trt_fp16:
            by_provider["TensorrtExecutionProvider"] = "fp16 (TensorRT)"
    if (
        spec.precision is Precision.FP16
    ):  # the CPU provider has few FP16 kernels: it casts and computes in FP32 between FP16 weights
        by_provider.setdefault(CPU, "fp16 weights, fp32 compute")
    return OnnxRuntimeRunner(
        path,
        providers,
        intra_op_threads=threads,
        allow_fallback=options.allow_fallback,
        precision=spec.precision.value,
        install_hint=BACKENDS[name].install,
        precision_by_provider=by_provider,
        spin_wait=options.spin_wait,
    )
