"""FLOPs per frame of the real models, against the counts their authors publish, and the share of
an estimated peak."""

from __future__ import annotations

from pathlib import Path

import pytest

from facebatch.engines.bench.flops import model_flops, share_of_peak
from facebatch.environment import PeakEstimate, estimated_peak
from facebatch.errors import SpecError


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
    assert share_of_peak(6.86e9, 24.3, intel) == pytest.approx(0.5009, rel=1e-3)
    avx2 = estimated_peak(2, {"avx2", "fma"})
    sse = estimated_peak(2, set())
    if avx2 is not None and sse is not None:  # /proc/cpuinfo names a clock
        assert avx2.flops_per_cycle == 32 and sse.flops_per_cycle == 8 and avx2.ghz == sse.ghz
