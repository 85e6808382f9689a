"""The release gate catches real bugs and passes what our exporter writes.

* the official detectors with only their batch dimension made symbolic fail, and the
  localisation names a head Transpose/Reshape; after ``fix`` they pass;
* a GroupNorm-head SCRFD exported at batch 1 whose Reshape(1, G, -1) survived fails check 1
  and the localisation names the normalisation;
* a graph with correct shapes that mixes a little of the batch mean into every frame fails
  check 1 and is localised;
* the naively batched official detectors also decode different faces for a frame inside a
  batch (check 3), because a batched consumer splits their rows into N blocks;
* our exported artifacts pass every check, parity with torch included; reports and exit
  codes follow the contract; the gate cannot pass by accident (strict mode, batch sizes).

The repairs of these graphs are tested with the exporter (tests/facebatch/workflows/test_fix.py).
"""

import json
import warnings
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from facebatch.cli import main
from facebatch.configs.embedder import EmbedderDescription
from facebatch.core.onnx_graph import GraphView
from facebatch.exporter.models.scrfd import scrfd_from_variant, seeded_init
from facebatch.exporter.torch_reference import torch_reference
from facebatch.verify.verify_job import VerifyOptions, run_checks
from tests.data.graphs import batch_mean_leak, with_symbolic_batch

QUICK = VerifyOptions(batch_sizes=(1, 2, 3), sizes=((320, 320),))


def statuses(report) -> dict[int, str]:
    return {c.number: c.status for c in report.checks}


@pytest.mark.parametrize("name", ["det_500m.onnx", "det_2.5g.onnx"])
def test_official_detectors_made_dynamic_fail_and_the_head_is_named(
    models_dir: Path, photos: list[Path], tmp_path: Path, name: str
):
    naive = with_symbolic_batch(models_dir / name, tmp_path / name)
    with_faces = replace(QUICK, photos=photos[:3])  # biden_1, biden_2, gauss: one face each
    report = run_checks(naive, with_faces)
    assert not report.passed
    assert statuses(report)[1] == "fail" and statuses(report)[2] == "fail" and statuses(report)[3] == "fail"
    decoded = next(c for c in report.checks if c.number == 3)
    assert decoded.data["detections_per_frame_alone"] == [1, 1, 1]
    assert any("alone" in line and "inside the batch" in line for line in decoded.details)
    localisation = next(c for c in report.checks if c.number == 5)
    culprit = localisation.data["culprits"][0]
    assert culprit["op_type"] in ("Transpose", "Reshape")
    assert "folds the batch into the rows" in culprit["hint"]
    lint = next(c for c in report.checks if c.number == 6)
    assert "Reshape to [-1, 1] after Transpose(perm=[2, 3, 0, 1]) folds the batch into the rows" in "\n".join(
        lint.details
    )
    independence = next(c for c in report.checks if c.number == 1)
    assert "cannot be sliced per frame (check 2 lists them)" in independence.summary
    assert not any("dim 0" in line for line in independence.details)  # check 2 lists those, not check 1 again


@pytest.mark.slow  # exports a model from torch
def test_groupnorm_exported_at_batch_1_is_caught_at_the_normalisation(tmp_path: Path):
    path = tmp_path / "scrfd_500m_gn_b1.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            seeded_init(scrfd_from_variant("scrfd_500m")),
            torch.randn(1, 3, 320, 320),
            str(path),
            dynamo=False,
            opset_version=11,
            input_names=["input.1"],
            training=torch.onnx.TrainingMode.EVAL,
        )
    model = onnx.load(str(path))
    view = GraphView(model)
    patched = 0
    for node in model.graph.node:  # the constants an exporter that folded shapes at batch 1 leaves behind
        target = view.const(node.input[1]) if node.op_type == "Reshape" else None
        if (
            target is not None
            and target.size == 3
            and target[0] == 0
            and view.consumers[node.output[0]][0].op_type == "InstanceNormalization"
        ):
            name = f"{node.name}_batch1_shape"
            model.graph.initializer.append(numpy_helper.from_array(np.array([1, *target[1:]], np.int64), name))
            node.input[1] = name
            patched += 1
    assert patched == 12  # 12 InstanceNormalization nodes in scrfd_500m (its GroupNorm heads, exported at batch 1)
    onnx.save(model, str(path))
    path = with_symbolic_batch(path, path)
    report = run_checks(path, QUICK)
    assert statuses(report)[1] == "fail"
    independence = next(c for c in report.checks if c.number == 1)
    assert "frames differ from their single runs" in independence.summary
    culprit = next(c for c in report.checks if c.number == 5).data["culprits"][0]
    assert culprit["op_type"] == "InstanceNormalization" and culprit["kind"] == "mixes"
    assert "statistics" in culprit["hint"]


def test_a_graph_that_leaks_the_batch_mean_is_caught_and_localised(tmp_path: Path):
    path = batch_mean_leak(tmp_path / "leak.onnx")
    options = VerifyOptions(batch_sizes=(1, 2, 3), embedder=EmbedderDescription(embedding_size=4 * 112 * 112))
    report = run_checks(path, options)
    assert statuses(report) == {1: "fail", 2: "pass", 3: "n/a", 4: "skip", 5: "fail", 6: "fail"}
    culprit = next(c for c in report.checks if c.number == 5).data["culprits"][0]
    assert culprit["node"] == "batch_mean" and culprit["kind"] == "mixes"
    worst = max((r for r in report.checks[0].data["results"]), key=lambda r: r["max_abs_diff"])
    assert worst["max_abs_diff"] > 1e-5 and worst["frame"] is not None


@pytest.mark.slow  # exports a model from torch
def test_our_artifacts_pass_every_check(tmp_path: Path, photos: list[Path]):
    from facebatch.exporter.arcface_export import ArcFaceExportOptions, export_arcface
    from facebatch.exporter.scrfd_export import ScrfdExportOptions, export_scrfd

    detector = export_scrfd(
        ScrfdExportOptions(variant="scrfd_500m", height=160, width=160, out_dir=tmp_path, parity_batch_sizes=(1, 2))
    )
    embedder = export_arcface(ArcFaceExportOptions(network="arcface_mbf", out_dir=tmp_path, parity_batch_sizes=(1, 2)))
    options = VerifyOptions(photos=photos, reference=torch_reference(), strict=True)
    for artifact, decoded in ((detector.onnx_path, "pass"), (embedder.onnx_path, "n/a")):
        report = run_checks(artifact, options)
        assert report.passed, [c.summary for c in report.checks]
        assert report.spec_source == "facebatch metadata"
        assert statuses(report) == {1: "pass", 2: "pass", 3: decoded, 4: "pass", 5: "n/a", 6: "pass"}
        parity = next(c for c in report.checks if c.number == 4)
        assert [r["label"] for r in parity.data["reports"]] == ["batch 1", "batch 32"]
        assert "seeded weights, seed 0" in parity.summary


def test_cli_reports_and_exit_codes(models_dir: Path, photos: list[Path], tmp_path: Path, capsys):
    # the file against itself: its values are right (check 4, after unfolding the 2-D heads)
    # but batched, its rows mix frames (checks 1, 2, 3, 5, 6)
    argv = [
        "verify",
        str(models_dir / "det_500m.onnx"),
        "--batch-sizes",
        "1,2",
        "--size",
        "320",
        "--images",
        str(photos[0].parent),
        "--reference",
        str(models_dir / "det_500m.onnx"),
        "--json",
        str(tmp_path / "r.json"),
        "--markdown",
        str(tmp_path / "r.md"),
        "--junit",
        str(tmp_path / "r.xml"),
    ]
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert (
        "FAIL" in captured.out and "facebatch: error: det_500m.onnx fails check(s) 1 batch independence" in captured.err
    )
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["passed"] is False and data["checks"][0]["name"] == "batch independence"
    assert "| 5 | localisation | FAIL |" in (tmp_path / "r.md").read_text()
    suite = ET.parse(tmp_path / "r.xml").getroot().find("testsuite")
    assert suite.get("tests") == "6" and suite.get("failures") == "5"
    assert [c["status"] for c in data["checks"]] == ["fail", "fail", "fail", "pass", "fail", "fail"]
    assert data["frames"][:2] == [p.name for p in photos[:2]] and data["options"]["batch_sizes"] == [1, 2]
    assert data["command"] == "facebatch " + " ".join(argv)
    assert main(["verify", str(tmp_path / "missing.onnx")]) == 2
    assert main(["verify", str(models_dir / "det_500m.onnx"), "--size", "300"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("facebatch: error:")]
    assert len(errors) == 2 and "does not exist" in errors[0] and "multiple of 32" in errors[1]
