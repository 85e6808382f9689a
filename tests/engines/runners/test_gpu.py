"""The CUDA paths: the torch runner with FP16 autocast, onnxruntime's CUDA and TensorRT providers,
each against the CPU on a real artifact, and a bench run on them. Each test is marked with what it
needs (conftest): it skips with the reason where that is missing, and runs wherever it is."""

from pathlib import Path

import numpy as np
import pytest

from facebatch.configs.model_file import read_model_file
from facebatch.engines.bench.job import ModelBenchOptions, bench_models
from facebatch.engines.bench.measure import Budget
from facebatch.engines.pipeline.preprocess import model_frames
from facebatch.engines.runners.factory import RunnerOptions, make_onnx_runner
from facebatch.engines.runners.onnxruntime_runner import OnnxRuntimeRunner
from facebatch.exporter.backends import make_runner
from tests.engines.gpu_gate import assert_passes_the_fp16_gate


@pytest.mark.gpu("torch-cuda")
def test_torch_on_cuda_runs_fp16_autocast_close_to_the_cpu(small_detector: Path, photos):
    model = read_model_file(small_detector)
    frames = model_frames(model, model.spec.input_size, 4, photos[:4])
    with (
        make_runner("torch", model, model.spec.input_size, RunnerOptions()) as gpu,
        OnnxRuntimeRunner(small_detector) as cpu,
    ):
        assert gpu.provider.startswith("torch-cuda (") and gpu.precision == "fp16 (autocast)"
        ours, reference = gpu.infer({"input.1": frames}), cpu.infer({"input.1": frames})
    for name in reference:  # fp16 arithmetic: scores within 1e-2, distances (stride units) within 5e-2
        assert np.max(np.abs(ours[name] - reference[name])) < (1e-2 if name.startswith("score") else 5e-2), name


@pytest.mark.gpu("ort-cuda")
def test_onnxruntime_cuda_matches_the_cpu_and_keeps_frames_apart(small_detector: Path, photos):
    model = read_model_file(small_detector)
    frames = model_frames(model, model.spec.input_size, 4, photos[:4])
    with (
        make_onnx_runner("ort-cuda", model, model.spec.input_size, RunnerOptions()) as gpu,
        OnnxRuntimeRunner(small_detector) as cpu,
    ):
        assert gpu.provider == "CUDAExecutionProvider"
        together, reference = gpu.infer({"input.1": frames}), cpu.infer({"input.1": frames})
        alone = [gpu.infer({"input.1": frames[i : i + 1]}) for i in range(4)]
    for name in reference:
        assert np.max(np.abs(together[name] - reference[name])) < 1e-4
        assert max(float(np.max(np.abs(together[name][i] - alone[i][name][0]))) for i in range(4)) < 1e-4


@pytest.mark.gpu("ort-trt")
def test_onnxruntime_tensorrt_runs_fp16_within_the_fp16_tolerances_and_keeps_frames_apart(
    small_detector: Path, photos, tmp_path: Path
):
    """The ort-trt backend: TensorRT builds from the spec's batch profile into the engine cache, and says
    what it computes in (TensorRT < 11: the FP16 flag on the FP32 graph; ≥ 11: as typed, so FP32)."""
    model = read_model_file(small_detector)
    frames = model_frames(model, model.spec.input_size, 8, photos)
    options = RunnerOptions(trt_cache=tmp_path / "trt-cache")
    with make_onnx_runner("ort-trt", model, model.spec.input_size, options) as gpu:
        assert gpu.provider == "TensorrtExecutionProvider" and "TensorRT" in gpu.precision
        assert_passes_the_fp16_gate(model, gpu, frames, (1, 8))
    assert any((tmp_path / "trt-cache").iterdir())  # the engine went into the cache


@pytest.mark.gpu("torch-cuda")
def test_bench_runs_on_the_gpu_backends(small_detector: Path):
    from facebatch.engines.runners.availability import CUDA, detect_runtimes

    backends = ("torch",)
    if detect_runtimes().provider_problem(CUDA) is None:
        backends += ("ort-cuda",)
    report = bench_models(
        [read_model_file(small_detector)],
        ModelBenchOptions(backends=backends, batch_sizes=(1, 8), budget=Budget(0.1, iters=5)),
        make_runner,
    )
    assert all(("CUDA" in run.provider or "cuda" in run.provider) and run.hardware != "a GPU" for run in report.runs)
    assert all(len(t.latency.samples) == 5 for run in report.runs for t in run.timings)
