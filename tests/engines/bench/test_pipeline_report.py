"""The pipeline bench report's verdicts, as plain data: a run with other models or another decode
than insightface's is judged by the hand-labelled faces it keeps, not by matching insightface face
for face; each run's share of the CPU's peak; whole-process ratios."""

from __future__ import annotations

import pytest

from facebatch.core.environment import PeakEstimate
from facebatch.engines.bench.pipeline_report import INSIGHTFACE, LOOP, OURS, Contender, PipelineBenchReport
from facebatch.engines.bench.process_time import ProcessTime
from facebatch.engines.evaluation.agreement import Agreement


def report(**fields) -> PipelineBenchReport:
    made = PipelineBenchReport({}, {}, "det.onnx", "emb.onnx", "ort-cpu", "CPUExecutionProvider", **fields)
    made.contenders = [
        Contender(OURS, "", 10, 100, [1.0]),
        Contender(LOOP, "", 10, 100, [2.0]),
        Contender(INSIGHTFACE, "", 10, 100, [2.5]),
    ]
    return made


def test_a_run_unlike_insightfaces_is_judged_by_the_labelled_faces_it_keeps():
    differs = Agreement(
        f"{OURS} vs {INSIGHTFACE}",
        problems=["voc.jpg face 3: box 1.40 px", "voc.jpg face 4: box 1.10 px"],
        differing={"voc.jpg"},
    )
    kept = report(agreements=[differs], recall={OURS: (20, 20), INSIGHTFACE: (20, 20)}, recall_reference=INSIGHTFACE)
    assert not kept.passed  # the same faces were promised: a difference fails
    differs.informational = "ours run det_int8.onnx, insightface det.onnx"
    assert kept.passed and kept.recall_problem() is None and differs.judged is False
    assert "differs on 1 photo, as expected: ours run det_int8.onnx" in differs.summary()  # photos, not faces
    lost = report(agreements=[differs], recall={OURS: (19, 20), INSIGHTFACE: (20, 20)}, recall_reference=INSIGHTFACE)
    assert not lost.passed and lost.recall_problem() == f"{OURS} finds 19/20 hand-labelled faces, {INSIGHTFACE} 20/20"
    markdown = lost.to_markdown()
    assert "**lost labelled faces**" in markdown and f"- {OURS}: 19/20" in markdown


def test_a_difference_from_the_same_files_always_fails():
    same_files = report(agreements=[Agreement(f"{OURS} vs {LOOP}", problems=["t1.jpg: 6 faces against 5"])])
    same_files.recall = {OURS: (20, 20), LOOP: (20, 20)}  # recall alone never excuses a difference
    assert not same_files.passed


def test_share_of_peak_counts_both_models():
    peak = PeakEstimate(2, 2.5, 32, "AVX2 + FMA")  # 160 GFLOP/s
    made = report(peak=peak, flops={"detector": 5e9, "embedder": 0.5e9})
    ours = made.contender(OURS)
    # 10 photos/s × 5 GFLOPs + 100 faces/s × 0.5 GFLOPs = 100 GFLOP/s of 160
    assert made.share_of_peak(ours) == pytest.approx(100 / 160)
    assert report(peak=peak, flops={"detector": 5e9}).share_of_peak(ours) is None  # the embedder was not counted
    assert "| facebatch pipeline | 10.00 | 100.0 | 1.00 | 1.00–1.00 | 1.00× | 62 % |" in made.to_markdown()  # 62.5 → 62


def test_whole_process_ratios_are_insightfaces_seconds_over_ours():
    processes = [
        ProcessTime("facebatch embed (folder)", 10, [], [2.0, 2.2]),
        ProcessTime("insightface script (folder)", 10, [], [3.0, 3.4]),
        ProcessTime("facebatch embed (first photo)", 1, [], [0.5]),
    ]
    made = report(processes=processes)
    assert made.process_ratio("folder") == pytest.approx(3.2 / 2.1)
    assert made.process_ratio("first photo") is None  # insightface's side was not run
    assert "| facebatch embed (folder) | 10 | 2.10 | 2.00, 2.20 | 1.52× |" in made.to_markdown()


def test_an_int8_detector_is_set_against_the_integer_ceiling():
    peak = PeakEstimate(2, 2.5, 32, "AVX2 + FMA", measured_gemm=200e9, measured_int8_gemm=800e9)
    made = report(peak=peak, flops={"detector": 5e9, "embedder": 0.5e9})
    made.precisions = {OURS: {"detector": "int8", "embedder": "fp32"}}
    # 10 photos/s × 5 GFLOPs of 800 GOPS + 100 faces/s × 0.5 GFLOPs of 200 GFLOP/s
    assert made.share_of_peak(made.contender(OURS)) == pytest.approx(50 / 800 + 50 / 200)
    # insightface (4 photos/s, 40 faces/s) runs the FP32 sources: both against the FP32 peak
    assert made.share_of_peak(made.contender(INSIGHTFACE)) == pytest.approx((4 * 5 + 40 * 0.5) / 200)
    unmeasured = report(peak=PeakEstimate(2, 2.5, 32, "AVX2 + FMA"), flops=made.flops, precisions=made.precisions)
    assert unmeasured.share_of_peak(unmeasured.contender(OURS)) is None  # no INT8 ceiling is guessed


def test_a_bf16_detector_is_set_against_the_measured_bf16_ceiling():
    peak = PeakEstimate(2, 2.5, 32, "AVX2 + FMA", measured_gemm=200e9)
    made = report(peak=peak, flops={"detector": 5e9, "embedder": 0.5e9}, bf16_peak=400e9)
    made.precisions = {OURS: {"detector": "bf16", "embedder": "fp32"}}  # auto: a proven detector beside FP32
    # 10 photos/s × 5 GFLOPs of the 400 GFLOP/s BF16 product + 100 faces/s × 0.5 GFLOPs of 200 GFLOP/s
    assert made.share_of_peak(made.contender(OURS)) == pytest.approx(50 / 400 + 50 / 200)
    assert "BF16 models against the 400 GFLOP/s a 1024² product in BF16 measured on OpenVINO" in made.to_markdown()
    assert made.to_dict()["bf16_peak"] == 400e9
    unmeasured = report(peak=peak, flops=made.flops, precisions=made.precisions)
    assert unmeasured.share_of_peak(unmeasured.contender(OURS)) is None  # no BF16 ceiling is guessed


def test_an_int8_models_fp32_layers_are_set_against_the_fp32_peak():
    peak = PeakEstimate(2, 2.5, 32, "AVX2 + FMA", measured_gemm=200e9, measured_int8_gemm=800e9)
    made = report(peak=peak, flops={"detector": 5e9, "embedder": 0.5e9})
    made.precisions = {OURS: {"detector": "int8", "embedder": "int8"}}
    made.fp32_flops = {OURS: {"detector": 0.0, "embedder": 0.1e9}}  # a mixed embedder: a fifth kept FP32
    # 10 photos/s × 5 GFLOPs of 800 GOPS + 100 faces/s × (0.4 GOPs of 800 + 0.1 GFLOPs of 200)
    assert made.share_of_peak(made.contender(OURS)) == pytest.approx(50 / 800 + 40 / 800 + 10 / 200)
    assert peak.share(0.5e9, 100, "fp32", fp32_ops=0.1e9) == pytest.approx(50 / 200)  # FP32 files: all of it FP32
