"""The BF16 proof on the real fixtures: SCRFD-500M (the official file, at 160x160) and mobilefacenet_128d run on
OpenVINO in FP32 and BF16 and judged; refused before any work where the CPU lacks BF16, OpenVINO is missing or
the file is INT8. The proofs themselves run only where this CPU's OpenVINO lists BF16 (an AVX2-only CI skips them)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import onnx
import pytest

from facebatch.configs.model_file import read_model_file
from facebatch.core.errors import OutputError, SpecError
from facebatch.engines.runners.openvino_runner import OpenVinoCpu, detect_openvino_cpu
from facebatch.workflows.bf16_proof import Bf16ProofOptions, prove_bf16
from facebatch.workflows.bf16_record import WRITER, bf16_record_path, bf16_refusal, read_record
from facebatch.workflows.models import runnable

PROOF_SIZE = (160, 160)  # SCRFD-500M passes at 160 (min IoU 0.983, landmarks within 1.02 px) and fails at 640
NO_BF16 = OpenVinoCpu("2026.4.1", ("FP32", "INT8", "EXPORT_IMPORT"), "AMD EPYC (AVX2)", "none")
needs_bf16 = pytest.mark.skipif(not detect_openvino_cpu().bf16, reason="this CPU's OpenVINO lists no BF16")


def proven_detector(models_dir: Path, photos: list[Path], folder: Path) -> Path:
    """A copy of the official SCRFD-500M with a passing BF16 proof beside it (the record names this CPU)."""
    folder.mkdir(parents=True, exist_ok=True)
    model = Path(shutil.copyfile(models_dir / "det_500m.onnx", folder / "det_500m.onnx"))
    result = prove_bf16(model, Bf16ProofOptions(photos=photos, size=PROOF_SIZE, threads=1))
    assert result.passed, result.failures
    return model


@needs_bf16
def test_the_real_detector_passes_and_its_proof_lets_it_run_in_bf16(
    models_dir: Path, photos: list[Path], tmp_path: Path
):
    model = proven_detector(models_dir, photos, tmp_path)
    record = read_record(bf16_record_path(model))
    assert record is not None and record["passed"] and record["written_by"] == WRITER
    figures = record["figures"]
    assert figures["reference_faces"] == figures["matched"] > 0 and not figures["missed"]
    assert figures["iou"]["min"] >= 0.95 and figures["landmark_error_px"]["max"] <= 2.0
    assert figures["recall_candidate"] == figures["recall_reference"]
    assert record["sha256"] == read_model_file(model).sha256 and record["cpu"]["bf16_class"] != "none"
    assert record["openvino"] and "BF16" in record["cpu"]["capabilities"]
    detector = read_model_file(model, size=PROOF_SIZE)
    assert runnable(detector, "detector", "bf16") is detector
    with pytest.raises(SpecError, match="has no BF16 in OpenVINO's capabilities"):  # the same proof, another CPU
        runnable(detector, "detector", "bf16", openvino=NO_BF16)


@needs_bf16
def test_a_proof_that_fails_is_recorded_and_refuses_bf16(models_dir: Path, photos: list[Path], tmp_path: Path):
    """SCRFD-500M at 640: BF16 drops a face of the selfie (score 0.51) and moves a tiny face's box (IoU 0.885)."""
    model = Path(shutil.copyfile(models_dir / "det_500m.onnx", tmp_path / "det_500m.onnx"))
    result = prove_bf16(model, Bf16ProofOptions(photos=photos, size=(640, 640), threads=1))
    assert not result.passed and result.refusal() is not None
    assert any("IoU" in f for f in result.failures)
    assert not read_record(bf16_record_path(model))["passed"]
    with pytest.raises(SpecError, match="failed its BF16 proof"):
        runnable(read_model_file(model, size=(640, 640)), "detector", "bf16")


@needs_bf16
def test_the_real_embedder_is_measured_per_face(
    batch_embedder: Path, models_dir: Path, photos: list[Path], tmp_path: Path
):
    """mobilefacenet_128d in BF16: pairs keep their order, but the worst face's cosine (0.986 on the fixtures) is
    below 0.999, so the verdict is a recorded failure and the pipeline will not run it in BF16."""
    embedder = Path(shutil.copyfile(batch_embedder, tmp_path / "mobilefacenet.onnx"))
    detector = proven_detector(models_dir, photos, tmp_path / "det")
    result = prove_bf16(embedder, Bf16ProofOptions(photos=photos, detector=detector, threads=1))
    figures = result.accuracy.to_dict()
    assert figures["faces"] > 0 and figures["ordering_candidate"] == figures["ordering_reference"]
    assert 0.95 < figures["cosine"]["min"] < 1.0
    assert result.passed == (figures["cosine"]["min"] >= 0.999)
    refusal = bf16_refusal(read_model_file(embedder), detect_openvino_cpu())
    assert (refusal is None) == result.passed


@pytest.mark.parametrize(
    ("cpu", "words"),
    [(NO_BF16, "has no BF16 in OpenVINO's capabilities"), (OpenVinoCpu(None), "OpenVINO, which is not installed")],
)
def test_refused_before_any_work_where_bf16_cannot_run(
    cpu: OpenVinoCpu, words: str, models_dir: Path, photos: list[Path], tmp_path: Path
):
    model = Path(shutil.copyfile(models_dir / "det_500m.onnx", tmp_path / "det_500m.onnx"))
    with pytest.raises(SpecError, match=words) as raised:
        prove_bf16(model, Bf16ProofOptions(photos=photos[:1], size=PROOF_SIZE, openvino=cpu))
    assert raised.value.field == "model" and not bf16_record_path(model).exists()


def test_an_int8_file_is_refused(models_dir: Path, photos: list[Path], tmp_path: Path):
    loaded = onnx.load(str(models_dir / "det_500m.onnx"))
    loaded.metadata_props.add(key="precision", value="int8")
    model = tmp_path / "det_500m_int8.onnx"
    onnx.save(loaded, str(model))
    here = OpenVinoCpu("2026.4.1", ("BF16", "FP32"), "AMD EPYC", "avx512_bf16")
    with pytest.raises(SpecError, match="is int8; BF16 is proven for FP32 files"):
        prove_bf16(model, Bf16ProofOptions(photos=photos[:1], size=PROOF_SIZE, openvino=here))


def test_photos_are_required(models_dir: Path):
    with pytest.raises(SpecError, match="pass photos that show faces") as raised:
        Bf16ProofOptions(photos=())
    assert raised.value.field == "photos"


def test_a_file_facebatch_did_not_write_is_never_overwritten(models_dir: Path, photos: list[Path], tmp_path: Path):
    model = Path(shutil.copyfile(models_dir / "det_500m.onnx", tmp_path / "det_500m.onnx"))
    theirs = bf16_record_path(model)
    theirs.write_text(json.dumps({"notes": "mine"}))
    here = OpenVinoCpu("2026.4.1", ("BF16", "FP32"), "AMD EPYC", "avx512_bf16")  # refused before any run
    with pytest.raises(OutputError, match="not a BF16 proof record facebatch wrote"):
        prove_bf16(model, Bf16ProofOptions(photos=photos[:1], size=PROOF_SIZE, openvino=here))
    assert json.loads(theirs.read_text()) == {"notes": "mine"}
