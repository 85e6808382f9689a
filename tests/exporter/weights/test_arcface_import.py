"""ArcFace weights from recognition ONNX files in the official layout, proven by the round
trip: seeded model → official-layout file (as torch2onnx.py writes it) → import → the
imported model reproduces the file's outputs (≤ 1e-4, cosine ≥ 0.99999)."""

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest

from facebatch.configs.arcface import ARCFACE_NORMALIZE
from facebatch.core.errors import WeightsError
from facebatch.engines.pipeline.preprocess import proof_frames
from facebatch.exporter.models.arcface import build_arcface, seeded_arcface
from facebatch.exporter.weights.arcface_import import arcface_from_onnx, conv_count, prove_arcface_import
from facebatch.verify.layout import io_dims
from tests.conftest import slow_fixture
from tests.data.official_layout import export_official_layout

# what arcface_torch's torch2onnx.py leaves in the graph (verified by re-exporting with it)
OFFICIAL_OPS = {
    "r50": {"Conv": 53, "BatchNormalization": 26, "PRelu": 25, "Add": 24, "Flatten": 1, "Gemm": 1},
    "mbf": {"Conv": 49, "PRelu": 33, "Add": 12, "BatchNormalization": 1, "Flatten": 1, "MatMul": 1},
}


@pytest.fixture(scope="module")
@slow_fixture("exports a model from torch")
def official_files(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("official")
    return {
        "r18": export_official_layout(
            seeded_arcface(build_arcface("r18"), seed=11), out / "r18.onnx", head_version=True
        ),
        "r50": export_official_layout(seeded_arcface(build_arcface("r50"), seed=12), out / "w600k_r50.onnx"),
        "mbf": export_official_layout(seeded_arcface(build_arcface("mbf"), seed=13), out / "w600k_mbf.onnx"),
    }


def test_official_layout_files_look_like_the_released_ones(official_files):
    for network, ops in OFFICIAL_OPS.items():
        model = onnx.load(str(official_files[network]))
        assert dict(Counter(n.op_type for n in model.graph.node)) == ops
        dims = io_dims(model)
        assert dims["input.1"] == [1, 3, 112, 112]
    # w600k_r50.onnx's output is called 683: our module order gives the same name
    assert onnx.load(str(official_files["r50"])).graph.output[0].name == "683"


@pytest.mark.parametrize("network", ["r18", "r50", "mbf"])
def test_round_trip_reproduces_the_source_file(official_files, photos, network: str):
    path = official_files[network]
    model, inferred = arcface_from_onnx(path)
    assert inferred == network
    frames = proof_frames(6, 112, 112, ARCFACE_NORMALIZE, photos[:3], fit="center")
    report = prove_arcface_import(model, path, frames)
    assert report.passed, report.summary()
    (diff,) = report.diffs
    assert diff.max_abs_diff <= 1e-4 and diff.min_cosine >= 0.99999


def test_naming_the_wrong_network_says_what_the_file_is(official_files):
    with pytest.raises(WeightsError, match="does not fit r34; it looks like r18"):
        arcface_from_onnx(official_files["r18"], "arcface_r34")


def test_foreign_embedder_is_refused_with_the_conv_counts(models_dir: Path):
    with pytest.raises(WeightsError, match=r"51 Conv nodes \(known: r18 21, .*mbf 49\).*the describe command"):
        arcface_from_onnx(models_dir / "mobilefacenet_128d.onnx")


def test_conv_counts_follow_from_the_configs():
    for network in ("r18", "mbf"):
        model = build_arcface(network)
        assert conv_count(network) == sum(1 for m in model.modules() if m.__class__.__name__ == "Conv2d")


def test_a_tampered_graph_is_caught_by_the_proof(official_files, tmp_path: Path):
    """A wrong weight anywhere (here: a PRelu slope changed after import) shows in the proof."""
    model, _ = arcface_from_onnx(official_files["r18"])
    model.layer2[1].prelu.weight.data += 0.5
    frames = np.random.default_rng(0).standard_normal((3, 3, 112, 112)).astype(np.float32)
    assert not prove_arcface_import(model, official_files["r18"], frames).passed
