"""bench_models for real on onnxruntime CPU and OpenVINO with short budgets: the structure,
counts, FPS = batch / median, the raw samples, the baseline and published comparisons, and
every refusal before the first measurement. No speed is asserted."""

import json
from dataclasses import replace
from pathlib import Path

import pytest

from facebatch.configs.model_file import read_model_file
from facebatch.core.environment import cpu_model
from facebatch.core.errors import SpecError
from facebatch.core.words import percent
from facebatch.engines.bench.flops import model_flops
from facebatch.engines.bench.job import ModelBenchOptions, bench_models
from facebatch.engines.bench.measure import Budget
from facebatch.engines.bench.published import load_published
from facebatch.engines.runners.availability import Runtimes
from facebatch.engines.runners.factory import RunnerOptions, make_onnx_runner

QUICK = Budget(warmup=0.0, iters=3)


def test_every_backend_and_batch_size_is_measured_and_derived_from_its_samples(
    small_detector: Path, photos, tmp_path: Path
):
    options = ModelBenchOptions(
        backends=("ort-cpu", "openvino"),
        batch_sizes=(1, 2, 4),
        budget=QUICK,
        photos=photos[:2],
        runner=RunnerOptions(threads=1),
    )
    report = bench_models([read_model_file(small_detector)], options, make_onnx_runner)
    assert [(r.backend, [t.batch for t in r.timings]) for r in report.runs] == [
        ("ort-cpu", [1, 2, 4]),
        ("openvino", [1, 2, 4]),
    ]
    cpu, ov = report.runs
    assert cpu.provider == "CPUExecutionProvider" and ov.provider.startswith("OpenVINO") and ov.precision == "fp32"
    assert (cpu.threads, ov.threads) == (1, 1) and cpu.hardware == cpu_model() and cpu.model == "scrfd_500m_bnkps"
    for timing in cpu.timings + ov.timings:
        assert len(timing.latency.samples) == 3 and timing.fps == pytest.approx(timing.batch / timing.latency.p50)
    data = json.loads(report.to_json())
    assert len(data["runs"][1]["timings"][2]["samples_s"]) == 3 and data["options"]["threads"] == 1
    assert data["environment"]["physical_cores"] >= 1 and data["options"]["photos"] == [str(p) for p in photos[:2]]
    header, rows = report.combined_rows(small_detector.name)
    assert header == ["Batch", "ort-cpu FPS", "openvino FPS", "openvino / ort-cpu"] and [r[0] for r in rows] == [
        "1",
        "2",
        "4",
    ]
    assert rows[0][3] == f"{ov.timings[0].fps / cpu.timings[0].fps:.2f}×"
    markdown = report.to_markdown()
    second = cpu.timings[1]
    share = cpu.share_of_peak(second, report.peak)
    assert "| Batch | FPS | ms/frame | of CPU peak |" in markdown
    assert f"| 2 | {second.fps:,.1f} | {second.ms_per_frame:.2f} | {percent(share)} |" in markdown


def test_each_cpu_cell_gives_its_share_of_the_cpus_estimated_peak(small_detector: Path):
    """Issue 25: FLOPs per frame × FPS over the estimated peak at the threads the run was given."""
    model = read_model_file(small_detector)
    options = ModelBenchOptions(
        backends=("ort-cpu",), batch_sizes=(1, 2), budget=QUICK, runner=RunnerOptions(threads=1)
    )
    report = bench_models([model], options, make_onnx_runner)
    (run,) = report.runs
    assert run.flops_per_frame == model_flops(small_detector, model.checked_size(None)).flops and run.on_cpu
    if report.peak is None:
        pytest.skip("/proc/cpuinfo names no clock here, so no peak is estimated")
    assert report.peak.cores == 1  # one thread: one core's peak
    for timing in run.timings:
        share = run.share_of_peak(timing, report.peak)
        assert share == pytest.approx(run.flops_per_frame * timing.fps / report.peak.flops_per_second)
        assert share > 0
    data = json.loads(report.to_json())
    # the report states the probe's rate beside the nominal one (the figure 'make bench' records for this CPU)
    assert data["peak"]["nominal_gflops_per_second"] > 0
    assert data["peak"]["measured_gemm_gflops_per_second"] > 0 and data["runs"][0]["share_of_peak"][
        "2"
    ] == pytest.approx(run.share_of_peak(run.timings[1], report.peak))
    assert f"Of CPU peak: FLOPs per frame × FPS over the {report.peak.describe()}" in report.to_markdown()
    gpu = replace(run, provider="CUDAExecutionProvider", on_cpu=False)
    assert gpu.share_of_peak(run.timings[0], report.peak) is None  # a GPU run is not judged against the CPU


def test_the_file_it_replaces_runs_beside_it_at_batch_1(small_detector: Path, models_dir: Path, tmp_path: Path):
    table = tmp_path / "mine.yaml"
    table.write_text(
        f"source: here\nhardware: {cpu_model()}\nprecision: fp32\nbackend: onnxruntime CPU\nmodels:\n"
        "  - {model: scrfd_500m_bnkps, input_size: [64, 64], results: [{batch: 2, fps: 10, ms_per_frame: 100}]}\n"
    )
    options = ModelBenchOptions(
        batch_sizes=(1, 2), budget=QUICK, baseline=models_dir / "det_500m.onnx", published=load_published(table)
    )
    report = bench_models([read_model_file(small_detector)], options, make_onnx_runner)
    (baseline,) = report.baselines
    assert (baseline.baseline, baseline.backend, baseline.baseline_timing.batch) == ("det_500m.onnx", "ort-cpu", 1)
    assert baseline.ratio_batch1 == pytest.approx(baseline.artifact_batch1.fps / baseline.baseline_timing.fps)
    assert (
        baseline.artifact_best.batch == report.runs[0].best().batch
        and "alternating blocks" in baseline.baseline_timing.notes[0]
    )
    (comparison,) = report.comparisons
    assert comparison.differences == [] and comparison.rows[0].ratio == pytest.approx(report.runs[0].timing(2).fps / 10)


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(batch_sizes=(1, 64)), "batch size 64 is outside scrfd_500m_bnkps's profile 1–32"),
        (
            dict(backends=("trt",), runner=RunnerOptions(runtimes=Runtimes.cpu_only())),
            r"the trt backend runs TensorRT engines, and TensorRT and Polygraphy are not installed here",
        ),
        (
            dict(backends=("ort-cpu", "ort-cuda"), runner=RunnerOptions(runtimes=Runtimes.cpu_only())),
            "needs onnxruntime's CUDAExecutionProvider, which this installation lacks: pip install 'facebatch\\[gpu\\]'",
        ),
        (dict(batch_sizes=(2,), baseline="det_500m.onnx"), "baseline compares at batch 1"),
        (
            dict(baseline="mobilefacenet_128d.onnx"),
            "baseline mobilefacenet_128d.onnx is an embedder; none of the artifacts is",
        ),
        (dict(size=(96, 96)), "runs at 64x64 only"),
    ],
)
def test_refusals_come_before_any_measurement(small_detector: Path, models_dir: Path, options: dict, message: str):
    if "baseline" in options:
        options["baseline"] = models_dir / options["baseline"]
    with pytest.raises(SpecError, match=message):
        bench_models([read_model_file(small_detector)], ModelBenchOptions(budget=QUICK, **options), make_onnx_runner)


def test_a_file_whose_batch_is_fixed_runs_at_that_batch_only(models_dir: Path):
    official = read_model_file(models_dir / "det_500m.onnx", size=(64, 64))
    with pytest.raises(
        SpecError,
        match=r"takes batch 1 only \(its batch axis is fixed\): bench it with batch_sizes 1, or repair its batch "
        r"axis first with fix \(into det_500m_batch.onnx\)",
    ) as refused:
        bench_models([official], ModelBenchOptions(batch_sizes=(1, 2), budget=QUICK), make_onnx_runner)
    assert refused.value.field == "batch_sizes"  # the command line says --batch-sizes 1
    (run,) = bench_models([official], ModelBenchOptions(batch_sizes=(1,), budget=QUICK), make_onnx_runner).runs
    assert run.model == "det_500m" and run.timings[0].batch == 1


def test_a_missing_gpu_provider_falls_back_only_when_allowed_and_says_so(small_detector: Path):
    # a machine without a usable CUDA provider (stated: on a GPU machine the CUDA provider would run)
    no_cuda = RunnerOptions(allow_fallback=True, runtimes=Runtimes.cpu_only())
    options = ModelBenchOptions(backends=("ort-cuda",), batch_sizes=(1,), budget=QUICK, runner=no_cuda)
    (run,) = bench_models([read_model_file(small_detector)], options, make_onnx_runner).runs
    assert run.backend == "ort-cuda" and run.provider == "CPUExecutionProvider"  # the report states what really ran


def test_tensorrt_and_cuda_runs_name_the_gpu_as_their_hardware():
    from facebatch.engines.bench.job import hardware

    env = {"gpus": [{"name": "NVIDIA H200"}], "cpu": "AMD EPYC (2 cores)"}
    assert hardware("TensorRT 11.4 on NVIDIA H200 (compute capability 9.0)", env) == "NVIDIA H200"
    assert hardware("TensorrtExecutionProvider", env) == hardware("CUDAExecutionProvider", env) == "NVIDIA H200"
    assert hardware("torch-cuda fp16 autocast", env) == "NVIDIA H200"
    assert hardware("CPUExecutionProvider", env) == "AMD EPYC (2 cores)"
