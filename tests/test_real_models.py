"""Every real model file in ../shared/fixtures/models through the gates a release pipeline runs, with
the fixture photos: each must pass, and each gate must fail its deliberately broken twin.

    detectors (det_500m, det_2.5g, the keep-batch re-export): export at 320 (det_2.5g also at 640,
    the ``real_detector`` fixture) → verify --strict against torch, rebuilt from the recorded weights
    the official files: fix → verify --strict against the original, one frame at a time
    the embedder (mobilefacenet_128d): fix → verify --strict against the original → FP16
    broken twins: one wrong weight (the import proof, tests/exporter/weights/test_scrfd_import.py), a batch
    leak (below), an FP16 graph with a clamped weight (tests/facebatch/workflows/test_convert.py), an INT8
    embedder below its cosine gate (tests/facebatch/workflows/test_quantize.py)

The release of a real detector with the fixed embedder and --int8, and its --check, are in
tests/facebatch/workflows/release/test_release.py (``int8_release``). This module takes about 3 minutes on 2 cores.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from facebatch.exporter.scrfd_export import ScrfdExportRequest, export_scrfd
from facebatch.exporter.torch_reference import torch_reference
from facebatch.verify.reference import onnx_reference
from facebatch.verify.verify_job import VerifyOptions
from facebatch.verify.verify_job import run_checks as verify_model
from facebatch.workflows.convert import ConvertOptions, convert_fp16
from facebatch.workflows.fix import fix_onnx
from tests.data.graphs import with_symbolic_batch

DETECTOR_FILES = ["det_500m.onnx", "det_2.5g.onnx", "scrfd_500m_bnkps_640_keepbatch.onnx"]
STRICT_BATCHES = (1, 2, 17)  # 17: every fixture photo in one batch


def statuses(report) -> dict[int, str]:
    return {c.number: c.status for c in report.checks}


@pytest.mark.parametrize("name", DETECTOR_FILES)
@pytest.mark.slow  # exports a model from torch
def test_a_real_detector_exported_at_320_passes_verify_strict_against_torch(
    models_dir: Path, photos: list[Path], tmp_path: Path, name: str
):
    exported = export_scrfd(
        ScrfdExportRequest(
            weights=models_dir / name, height=320, width=320, out_dir=tmp_path, photos=photos, parity_batch_sizes=(1, 2)
        )
    )
    assert exported.weights.proof is not None and exported.weights.proof.passed
    report = verify_model(
        exported.onnx_path,
        VerifyOptions(batch_sizes=STRICT_BATCHES, photos=photos, reference=torch_reference(), strict=True),
    )
    assert report.passed, report.failure_line()
    assert statuses(report) == {1: "pass", 2: "pass", 3: "pass", 4: "pass", 5: "n/a", 6: "pass"}


def test_the_real_2_5g_at_640_passes_verify_strict_against_torch(real_detector: Path, photos: list[Path]):
    report = verify_model(
        real_detector,
        VerifyOptions(batch_sizes=STRICT_BATCHES, photos=photos, reference=torch_reference(), strict=True),
    )
    assert report.passed, report.failure_line()
    check4 = next(c for c in report.checks if c.number == 4)
    assert "det_2.5g.onnx" in check4.summary and "decoded faces" in check4.summary


@pytest.mark.parametrize("name", ["det_500m.onnx", "det_2.5g.onnx"])
def test_an_official_detector_fixed_passes_and_its_naive_twin_fails(
    models_dir: Path, photos: list[Path], tmp_path: Path, name: str
):
    options = VerifyOptions(batch_sizes=STRICT_BATCHES, photos=photos, sizes=((320, 320),), strict=True)
    naive = with_symbolic_batch(models_dir / name, tmp_path / f"naive_{name}")  # its batch merely renamed: frames leak
    leaked = verify_model(naive, options)
    assert not leaked.passed and statuses(leaked)[1] == "fail" and statuses(leaked)[3] == "fail"
    fixed = fix_onnx(models_dir / name, tmp_path / f"fixed_{name}", size=(320, 320))
    report = verify_model(
        fixed.path, replace(options, reference=onnx_reference(models_dir / name, one_frame_at_a_time=True))
    )
    assert report.passed, report.failure_line()


def test_the_fixed_embedder_passes_verify_strict_and_converts_to_fp16(
    batch_embedder: Path, models_dir: Path, photos: list[Path], tmp_path: Path
):
    reference = onnx_reference(models_dir / "mobilefacenet_128d.onnx", one_frame_at_a_time=True)
    report = verify_model(
        batch_embedder, VerifyOptions(batch_sizes=STRICT_BATCHES, photos=photos, reference=reference, strict=True)
    )
    assert report.passed, report.failure_line()
    copy = tmp_path / batch_embedder.name
    copy.write_bytes(batch_embedder.read_bytes())
    converted = convert_fp16(copy, options=ConvertOptions(photos=photos, batch_sizes=(1, 32)))
    assert converted.written, converted.report.failure_line()
