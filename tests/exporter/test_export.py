"""The export job end to end on real weights and photos: parity at batch 1, 2, 7, 32,
symbolic batch named 'batch' in every input and output, metadata, sidecar, atomicity."""

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from facebatch.core.errors import OutputError, SpecError, WeightsError
from facebatch.core.onnx_graph import io_dims
from facebatch.engines.runners.onnxruntime_runner import OnnxRuntimeRunner
from facebatch.exporter.scrfd_export import ScrfdExportOptions, export_scrfd
from tests.conftest import slow_fixture

NAMES_KPS = ["score_8", "score_16", "score_32", "bbox_8", "bbox_16", "bbox_32", "kps_8", "kps_16", "kps_32"]


@pytest.fixture(scope="module")
@slow_fixture("exports a model from torch")
def det_500m_export(models_dir: Path, photos, tmp_path_factory) -> object:
    out = tmp_path_factory.mktemp("export500m")
    return export_scrfd(ScrfdExportOptions(weights=models_dir / "det_500m.onnx", out_dir=out, photos=photos))


def test_real_weights_parity_at_every_batch_size(det_500m_export):
    assert [r.label for r in det_500m_export.parity] == ["batch 1", "batch 2", "batch 7", "batch 32"]
    for report in det_500m_export.parity:
        assert report.passed and report.max_abs_diff <= 1e-4, report.summary()
        assert [d.name for d in report.diffs] == NAMES_KPS
    assert det_500m_export.parity_atol is None  # real weights: spec tolerance, nothing widened


def test_artifact_layout_and_symbolic_batch(det_500m_export):
    path = det_500m_export.onnx_path
    assert path.name == "scrfd_500m_320_batch.onnx"
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    dims = io_dims(model)
    assert dims["input.1"] == ["batch", 3, 320, 320]
    assert [o.name for o in model.graph.output] == NAMES_KPS
    rows = {8: 3200, 16: 800, 32: 200}
    for name in NAMES_KPS:
        kind, stride = name.split("_")
        assert dims[name] == ["batch", rows[int(stride)], {"score": 1, "bbox": 4, "kps": 10}[kind]]
    assert model.opset_import[0].version == 17


def test_metadata_and_sidecar_record_the_spec(det_500m_export, models_dir: Path):
    props = {p.key: p.value for p in onnx.load(str(det_500m_export.onnx_path)).metadata_props}
    assert props["variant"] == "scrfd_500m_bnkps"
    assert props["input_size"] == "320,320" and props["strides"] == "8,16,32"
    assert props["mean"] == "127.5,127.5,127.5" and props["std"] == "128,128,128" and props["color_order"] == "RGB"
    assert props["anchors_per_location"] == "2" and "batch" in props["output_layout"]
    assert props["weights_source"] == "onnx" and len(props["weights_sha256"]) == 64
    assert json.loads(props["spec"])["name"] == "scrfd_500m_bnkps"
    sidecar = json.loads(det_500m_export.sidecar_path.read_text())
    assert sidecar["artifact"] == "scrfd_500m_320_batch.onnx"
    assert sidecar["weights"]["import_proof"]["passed"] is True
    assert [r["label"] for r in sidecar["proof"]["parity_torch_vs_onnxruntime"]] == [
        "batch 1",
        "batch 2",
        "batch 7",
        "batch 32",
    ]
    assert sidecar["environment"]["packages"]["torch"].startswith("2.")


def test_batched_run_equals_single_frame_runs(det_500m_export, photos):
    """The artifact does not mix frames: each frame alone == the same frame inside a batch."""
    from facebatch.configs.scrfd import SCRFD_NORMALIZE
    from facebatch.engines.pipeline.preprocess import proof_frames

    frames = proof_frames(5, 320, 320, SCRFD_NORMALIZE, photos[:5])
    with OnnxRuntimeRunner(det_500m_export.onnx_path) as runner:
        batched = runner.infer({"input.1": frames})
        for i in range(len(frames)):
            single = runner.infer({"input.1": frames[i : i + 1]})
            for name in NAMES_KPS:
                assert np.max(np.abs(batched[name][i] - single[name][0])) < 1e-5


@pytest.mark.slow  # exports a model from torch
def test_official_2_5g_at_640_parity(models_dir: Path, photos, tmp_path: Path):
    result = export_scrfd(
        ScrfdExportOptions(weights=models_dir / "det_2.5g.onnx", height=640, width=640, out_dir=tmp_path, photos=photos)
    )
    assert result.onnx_path.name == "scrfd_2.5g_640_batch.onnx"
    assert result.weights.proof is not None and result.weights.proof.passed
    assert all(r.passed for r in result.parity), [r.summary() for r in result.parity]


@pytest.mark.slow  # exports a model from torch
def test_keepbatch_reexport_checkpoint_and_dynamic_size(models_dir: Path, photos, tmp_path: Path):
    """Import the third-party re-export, save it as an mmdet-style .pth, export from the .pth
    with symbolic height/width, and run the artifact at two sizes."""
    import torch

    from facebatch.exporter.weights.scrfd_import import scrfd_from_onnx

    model, variant = scrfd_from_onnx(models_dir / "scrfd_500m_bnkps_640_keepbatch.onnx")
    pth = tmp_path / "scrfd_500m_bnkps.pth"
    torch.save({"meta": {"epoch": 1}, "state_dict": model.state_dict()}, pth)
    result = export_scrfd(
        ScrfdExportOptions(
            variant=variant,
            weights=pth,
            dynamic_size=True,
            height=256,
            width=320,
            out_dir=tmp_path,
            photos=photos,
            opset=18,
            parity_batch_sizes=(1, 3),
        )
    )
    assert result.onnx_path.name == "scrfd_500m_dyn_batch.onnx" and result.weights.kind == "checkpoint"
    dims = io_dims(onnx.load(str(result.onnx_path)))
    assert dims["input.1"] == ["batch", 3, "height", "width"]
    assert dims["score_8"] == ["batch", "rows_8", 1] and dims["kps_32"] == ["batch", "rows_32", 10]
    with OnnxRuntimeRunner(result.onnx_path) as runner:
        for h, w in ((640, 640), (96, 160)):
            outs = runner.infer({"input.1": np.zeros((2, 3, h, w), dtype=np.float32)})
            assert outs["bbox_8"].shape == (2, (h // 8) * (w // 8) * 2, 4)


@pytest.mark.slow  # exports a model from torch
def test_default_detector_seeded(tmp_path: Path, photos):
    """What 'make export' produces: scrfd_10g_bnkps at 320 with seeded weights, marked as such."""
    result = export_scrfd(ScrfdExportOptions(variant="scrfd_10g_bnkps", out_dir=tmp_path, photos=photos))
    assert result.onnx_path.name == "scrfd_10g_320_seeded_batch.onnx"
    props = {p.key: p.value for p in onnx.load(str(result.onnx_path)).metadata_props}
    assert props["weights_source"] == "seeded" and "verification and benchmarking only" in props["warning"]
    assert "seeded weights" in json.loads(result.sidecar_path.read_text())["weights"]["parity_note"]
    assert all(r.passed for r in result.parity)
    assert result.parity_atol is not None and result.parity_atol < 1e-3


def test_failed_export_leaves_the_existing_artifact_untouched(models_dir: Path, tmp_path: Path):
    target = tmp_path / "scrfd_2.5g_320_batch.onnx"
    target.write_bytes(b"a good artifact from yesterday")
    with pytest.raises(WeightsError):
        export_scrfd(
            ScrfdExportOptions(variant="scrfd_2.5g_bnkps", weights=models_dir / "det_500m.onnx", out_dir=tmp_path)
        )
    assert target.read_bytes() == b"a good artifact from yesterday"
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]  # no temp files left


def test_bad_requests(tmp_path: Path):
    with pytest.raises(SpecError, match="multiple of 32"):
        export_scrfd(ScrfdExportOptions(variant="scrfd_500m", height=330, out_dir=tmp_path))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="not a directory"):
        export_scrfd(ScrfdExportOptions(variant="scrfd_500m", out_dir=blocker))
    with pytest.raises(SpecError, match="name a variant"):
        export_scrfd(ScrfdExportOptions(out_dir=tmp_path))
