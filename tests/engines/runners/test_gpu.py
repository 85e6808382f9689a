"""The CUDA paths: the torch runner with FP16 autocast and onnxruntime's CUDA provider, each
against the CPU on a real artifact, and a bench run on them. Marked gpu: they skip with the
reason on machines without CUDA (conftest)."""

from pathlib import Path

import numpy as np
import pytest

from facebatch.configs.model_file import read_model_file
from facebatch.engines.bench.job import BenchOptions, bench_models
from facebatch.engines.bench.measure import Budget
from facebatch.engines.pipeline.preprocess import model_frames
from facebatch.engines.runners.onnxruntime_runner import OnnxRuntimeRunner
from facebatch.engines.runners.registry import RunnerOptions, onnx_runner
from facebatch.exporter.backends import make_runner

pytestmark = pytest.mark.gpu


def needs_ort_cuda() -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("onnxruntime here has no CUDAExecutionProvider (install onnxruntime-gpu)")


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


def test_onnxruntime_cuda_matches_the_cpu_and_keeps_frames_apart(small_detector: Path, photos):
    needs_ort_cuda()
    model = read_model_file(small_detector)
    frames = model_frames(model, model.spec.input_size, 4, photos[:4])
    with (
        onnx_runner("ort-cuda", small_detector, model.spec, model.spec.input_size, RunnerOptions()) as gpu,
        OnnxRuntimeRunner(small_detector) as cpu,
    ):
        assert gpu.provider == "CUDAExecutionProvider"
        together, reference = gpu.infer({"input.1": frames}), cpu.infer({"input.1": frames})
        alone = [gpu.infer({"input.1": frames[i : i + 1]}) for i in range(4)]
    for name in reference:
        assert np.max(np.abs(together[name] - reference[name])) < 1e-4
        assert max(float(np.max(np.abs(together[name][i] - alone[i][name][0]))) for i in range(4)) < 1e-4


def test_bench_runs_on_the_gpu_backends(small_detector: Path):
    backends = ("torch",)
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        backends += ("ort-cuda",)
    report = bench_models(
        [read_model_file(small_detector)],
        BenchOptions(backends=backends, batch_sizes=(1, 8), budget=Budget(0.1, iters=5)),
        make_runner,
    )
    assert all(("CUDA" in run.provider or "cuda" in run.provider) and run.hardware != "a GPU" for run in report.runs)
    assert all(len(t.latency.samples) == 5 for run in report.runs for t in run.timings)
