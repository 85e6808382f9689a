"""FLOPs per frame of the real models, against the counts their authors publish, and the share of
an estimated peak."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from facebatch.core.environment import PeakEstimate, estimated_peak
from facebatch.core.errors import SpecError
from facebatch.engines.bench.flops import gemm_model, gemm_operations, measured_peak, model_flops


def test_scrfd_counts_match_their_published_names(models_dir: Path, real_detector: Path):
    # SCRFD-2.5G and -500M are named by their multiply-adds at 640×480 (VGA): 2 FLOPs each here
    assert model_flops(models_dir / "det_2.5g.onnx", (480, 640)).gflops / 2 == pytest.approx(2.5, rel=0.05)
    assert model_flops(models_dir / "det_500m.onnx", (480, 640)).gflops / 2 == pytest.approx(0.5, rel=0.12)
    # insightface's file sizes its upsampling at run time: the shapes come from one frame through ORT,
    # and our re-export (every shape static) counts the same
    official = model_flops(models_dir / "det_2.5g.onnx", (640, 640))
    assert model_flops(real_detector, (640, 640)).flops == pytest.approx(official.flops, rel=1e-6)
    with pytest.raises(SpecError, match="takes 640×640 frames only"):
        model_flops(real_detector, (480, 640))


def test_mobilefacenet_is_a_quarter_giga_multiply_adds(models_dir: Path):
    # MobileFaceNet: 0.22-0.23 G multiply-adds at 112×112 (Chen et al. 2018 count 221 M without the last layers)
    assert model_flops(models_dir / "mobilefacenet_128d.onnx", (112, 112)).gflops == pytest.approx(0.468, rel=0.02)


def test_peak_estimate_follows_the_vector_unit():
    intel = PeakEstimate(2, 2.6, 64, "AVX-512")
    assert intel.flops_per_second == pytest.approx(332.8e9)
    assert "an estimate" in intel.describe() and intel.to_dict()["estimate"] is True
    assert intel.share(6.86e9, 24.3) == pytest.approx(0.5009, rel=1e-3)
    avx2 = estimated_peak(2, {"avx2", "fma"})
    sse = estimated_peak(2, set())
    if avx2 is not None and sse is not None:  # /proc/cpuinfo names a clock
        assert avx2.flops_per_cycle == 32 and sse.flops_per_cycle == 8 and avx2.ghz == sse.ghz


def test_a_measured_gemm_above_the_nominal_peak_becomes_the_peak():
    """A VM reports its base clock: on the 2-core EPYC here the nominal 166 GFLOP/s sat below the
    200 onnxruntime's GEMM reached, which put models above 100 % of "peak"."""
    nominal = PeakEstimate(2, 2.6, 32, "AVX2 + FMA")
    faster = replace(nominal, measured_gemm=200e9)
    assert faster.flops_per_second == 200e9 and "measured" in faster.describe() and not faster.to_dict()["estimate"]
    slower = replace(nominal, measured_gemm=100e9)
    assert slower.flops_per_second == nominal.nominal_flops_per_second and "an estimate" in slower.describe()


@pytest.mark.parametrize("int8_weights", [None, "int8", "uint8"])
def test_the_gemm_probe_counts_two_operations_per_multiply_add_of_its_graph(int8_weights: str | None):
    """What the probe's rate is divided from, counted from the probe's own graph: [n, n] @ [n, n] is n³
    multiply-adds, 2 operations each. (Before: its rate was set within 0.4-2x of the nominal peak, a
    wall-clock bound a loaded machine could break; the measured-against-nominal figures are now the bench
    report's, 'make bench', which prints both.)"""
    graph = gemm_model(64, int8_weights).graph
    (source,) = graph.input
    rows, inner = (d.dim_value for d in source.type.tensor_type.shape.dim)
    weight_inner, columns = graph.initializer[0].dims
    assert (rows, inner, weight_inner, columns) == (64, 64, 64, 64)
    assert gemm_operations(64) == 2 * rows * inner * columns


def test_the_gemm_probe_measures_this_cpu_on_the_threads_it_is_given():
    peak = measured_peak(1)
    if peak is None:
        pytest.skip("/proc/cpuinfo names no clock here, so no nominal peak to set the probe against")
    assert peak.cores == 1 and peak.measured_gemm is not None and peak.measured_gemm > 0
    # the 8-bit product against the FP32 one, both measured in this run: 4.4× with VNNI here (u8s8), and faster
    # than FP32 on any class with AVX2
    assert peak.measured_int8_gemm is not None and peak.measured_int8_gemm > peak.measured_gemm
    assert (
        peak.ops_per_second("int8") == peak.measured_int8_gemm
        and peak.ops_per_second("fp16 weights, fp32 compute") == peak.flops_per_second
    )


def test_an_int8_files_fp32_layers_are_counted_from_its_metadata(small_detector: Path, photos: list[Path], tmp_path):
    import onnx

    from facebatch.configs.model_file import read_model_file
    from facebatch.engines.bench.flops import node_flops
    from facebatch.engines.build.int8 import quantize_to_int8, stamp_int8
    from facebatch.engines.build.int8_recipes import RECIPES
    from facebatch.engines.pipeline.preprocess import proof_frames

    model = read_model_file(small_detector)
    frames = proof_frames(2, 64, 64, model.spec.normalize, photos)
    made = quantize_to_int8(small_detector, model.spec, frames, recipe=RECIPES["u8s8-input-fp32"])
    int8 = tmp_path / "small_int8.onnx"
    onnx.save(stamp_int8(made, model.props, small_detector.name, model.sha256, "0" * 64), int8)
    per_node = node_flops(small_detector, (64, 64))
    assert made.kept_fp32 and model_flops(int8, (64, 64)).kept_fp32 == sum(per_node[n] for n in made.kept_fp32) > 0
    assert sum(per_node.values()) == model_flops(small_detector, (64, 64)).flops
    assert model_flops(small_detector, (64, 64)).kept_fp32 == 0.0  # an FP32 file keeps nothing "in FP32"
