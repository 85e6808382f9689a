"""``facebatch export arcface_*`` end to end: the default artifact's name, I/O and metadata,
parity torch vs onnxruntime at batch 1, 2, 7, 32 (≤ 1e-4, cosine ≥ 0.99999 per row), frame
independence, every weights source, and refusals that leave nothing behind."""

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from facebatch.cli import main
from facebatch.configs.arcface import ALIGNMENT_TEMPLATE_112
from facebatch.core.onnx_graph import io_dims
from facebatch.engines.runners.onnxruntime_runner import OnnxRuntimeRunner
from facebatch.exporter.arcface_export import ArcFaceExportOptions, export_arcface
from facebatch.exporter.models.arcface import build_arcface, seeded_arcface
from tests.conftest import slow_fixture
from tests.data.official_layout import export_official_layout


@pytest.fixture(scope="module")
@slow_fixture("exports a model from torch")
def r50_export(photos, tmp_path_factory):
    return export_arcface(ArcFaceExportOptions(out_dir=tmp_path_factory.mktemp("r50"), photos=photos))


def test_default_artifact_name_and_io(r50_export):
    assert r50_export.onnx_path.name == "arcface_r50_seeded_batch.onnx"  # seeded: not named like the real w600k model
    model = onnx.load(str(r50_export.onnx_path))
    onnx.checker.check_model(model, full_check=True)
    assert io_dims(model) == {"input.1": ["batch", 3, 112, 112], "embedding": ["batch", 512]}
    symbols = {d.dim_param for v in model.graph.value_info for d in v.type.tensor_type.shape.dim if d.dim_param}
    assert symbols <= {"batch"}  # one symbol, one meaning


def test_parity_at_every_batch_size(r50_export):
    assert [r.label for r in r50_export.parity] == ["batch 1", "batch 2", "batch 7", "batch 32"]
    for report in r50_export.parity:
        (diff,) = report.diffs
        assert diff.max_abs_diff <= 1e-4 and diff.min_cosine >= 0.99999, report.summary()
    assert r50_export.parity_atol == pytest.approx(1e-4)  # seeded r50 is well conditioned: spec gate


def test_metadata_records_preprocessing_alignment_and_embedding(r50_export):
    props = {p.key: p.value for p in onnx.load(str(r50_export.onnx_path)).metadata_props}
    assert props["mean"] == "127.5,127.5,127.5" and props["std"] == "127.5,127.5,127.5"
    assert props["color_order"] == "RGB" and props["embedding_size"] == "512"
    assert json.loads(props["alignment_template"]) == [list(p) for p in ALIGNMENT_TEMPLATE_112]
    assert props["model_family"] == "arcface" and props["network"] == "r50"
    sidecar = json.loads(r50_export.sidecar_path.read_text())
    assert sidecar["spec"]["embedding_size"] == 512 and sidecar["spec"]["family"] == "arcface"
    assert sidecar["weights"]["kind"] == "seeded" and "warning" in sidecar["weights"]


def test_a_frame_alone_equals_the_frame_inside_a_batch(r50_export, photos):
    from facebatch.configs.arcface import ARCFACE_NORMALIZE
    from facebatch.engines.pipeline.preprocess import proof_frames

    frames = proof_frames(6, 112, 112, ARCFACE_NORMALIZE, photos[:4], fit="center")
    with OnnxRuntimeRunner(r50_export.onnx_path) as runner:
        together = runner.infer({"input.1": frames})["embedding"]
        alone = np.concatenate([runner.infer({"input.1": f[None]})["embedding"] for f in frames])
    assert together.shape == (6, 512)
    assert np.max(np.abs(together - alone)) < 1e-5


@pytest.mark.slow  # exports a model from torch
def test_export_from_an_official_layout_onnx(photos, tmp_path: Path):
    source = export_official_layout(seeded_arcface(build_arcface("mbf"), seed=21), tmp_path / "w600k_mbf.onnx")
    result = export_arcface(ArcFaceExportOptions(network=None, weights=source, out_dir=tmp_path / "out", photos=photos))
    assert result.onnx_path.name == "arcface_w600k_mbf_batch.onnx"
    assert result.weights.kind == "onnx" and result.weights.proof.passed
    assert result.parity_atol is None and all(r.max_abs_diff <= 1e-4 for r in result.parity)
    # the batch artifact reproduces the batch-1 source frame by frame
    frames = np.random.default_rng(2).standard_normal((3, 3, 112, 112)).astype(np.float32)
    with OnnxRuntimeRunner(source) as original, OnnxRuntimeRunner(result.onnx_path) as ours:
        theirs = np.concatenate([next(iter(original.infer({"input.1": f[None]}).values())) for f in frames])
        assert np.max(np.abs(ours.infer({"input.1": frames})["embedding"] - theirs)) <= 1e-4


@pytest.mark.slow  # exports a model from torch
def test_cli_export_from_a_backbone_pth(tmp_path: Path, capsys):
    model = seeded_arcface(build_arcface("r18"), seed=4)
    torch.save(model.state_dict(), tmp_path / "backbone.pth")
    argv = [
        "export",
        "arcface_r18",
        "--weights",
        str(tmp_path / "backbone.pth"),
        "--out",
        str(tmp_path / "out"),
        "--parity-batch-sizes",
        "1,3",
    ]
    assert main(argv) == 0
    shown = capsys.readouterr().out
    assert "exported arcface_r18" in shown and "cos ≥" in shown
    # backbone.pth is every arcface_torch run's name: the default name carries the weights' short sha256
    (artifact,) = (tmp_path / "out").glob("arcface_r18_backbone-*_batch.onnx")
    with OnnxRuntimeRunner(artifact) as runner:
        x = np.random.default_rng(0).standard_normal((2, 3, 112, 112)).astype(np.float32)
        with torch.no_grad():
            expected = model(torch.from_numpy(x)).numpy()
        assert np.max(np.abs(runner.infer({"input.1": x})["embedding"] - expected)) <= 1e-4


@pytest.mark.parametrize(
    "extra, message",
    [
        (["arcface_r50", "--size", "224"], "take 112x112"),
        (["arcface_r51"], "did you mean arcface_r50"),
        (["arcface_r50", "--weights", "{tmp}/pickle.pth"], "untrusted pickle"),
        (["arcface_r50", "--weights", "{tmp}/r18.pth"], "missing keys: layer1.2.bn1.bias"),
        (["arcface_r50", "--weights", "{tmp}/cut.onnx"], "truncated"),
        (["arcface_r50", "--config", "x.py"], "SCRFD detectors only"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(extra, message, tmp_path: Path, capsys):
    torch.save({"net": torch.nn.Linear(2, 2)}, tmp_path / "pickle.pth")  # a module object: not plain tensors
    torch.save(build_arcface("r18").state_dict(), tmp_path / "r18.pth")
    (tmp_path / "cut.onnx").write_bytes(b"\x08\x07" + b"\xff" * 64)
    before = sorted(p.name for p in tmp_path.iterdir())
    argv = ["export", *[a.format(tmp=tmp_path) for a in extra], "--out", str(tmp_path)]
    assert main(argv) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("facebatch: error:")]
    assert len(errors) == 1 and message in errors[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == before
