"""``--precision bf16`` takes a model only with a passing BF16 proof of this very file for this CPU class; an absent,
failed, hand-edited or foreign record, another file, another CPU class or a CPU without BF16 is refused in one
line. The records here are written by ``write_record`` with stated figures, so the checks run on any CPU."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from facebatch.configs.model_file import read_model_file
from facebatch.core.errors import SpecError
from facebatch.engines.runners.openvino_runner import OpenVinoCpu
from facebatch.workflows.bf16_record import bf16_record_path, bf16_refusal, record_digest, write_record
from facebatch.workflows.models import ModelOptions, pipeline_models, runnable

HERE = OpenVinoCpu("2026.4.1", ("BF16", "FP32", "INT8"), "AMD EPYC", "avx512_bf16")
FIGURES = {  # what SCRFD-2.5G at 640 measured on the fixture photos
    "photos": 17,
    "reference_faces": 188,
    "candidate_faces": 188,
    "matched": 188,
    "iou": {"min": 0.989},
    "landmark_error_px": {"max": 0.52},
    "missed": [],
    "extra": [],
    "labelled": 20,
    "recall_reference": 20,
    "recall_candidate": 20,
}


@pytest.fixture
def detector(models_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copyfile(models_dir / "det_500m.onnx", tmp_path / "det_500m.onnx"))


def record(model: Path, **changes) -> Path:
    stated = {
        "model": model.name,
        "sha256": read_model_file(model).sha256,
        "embedder": False,
        "size": [160, 160],
        "passed": True,
        "failures": [],
        "figures": FIGURES,
        "cpu": HERE.to_dict(),
        "openvino": HERE.version,
    }
    path = bf16_record_path(model)
    write_record(path, stated | changes)
    return path


def refusal(model: Path, cpu: OpenVinoCpu = HERE) -> str | None:
    return bf16_refusal(read_model_file(model, size=(160, 160)), cpu)


def test_a_passing_proof_of_this_file_on_this_cpu_class_lets_it_run(detector: Path):
    assert bf16_record_path(detector).name == "det_500m.bf16.json"
    record(detector)
    assert refusal(detector) is None
    model = read_model_file(detector, size=(160, 160))
    assert runnable(model, "detector", "bf16", openvino=HERE) is model


def test_an_absent_proof_refuses(detector: Path):
    assert refusal(detector) == "det_500m.onnx has no BF16 proof beside it (det_500m.bf16.json)"


def test_a_hand_edited_proof_refuses(detector: Path):
    path = record(detector, passed=False, failures=["a face is missed"])
    edited = json.loads(path.read_text()) | {"passed": True, "failures": []}
    path.write_text(json.dumps(edited))
    assert "is not a BF16 proof as facebatch wrote it" in refusal(detector)
    edited["digest"] = record_digest(edited)  # re-signed by hand: the figures are judged again all the same
    path.write_text(json.dumps(edited))
    assert refusal(detector) is None  # the failures were words; the figures pass
    edited["figures"] = FIGURES | {"iou": {"min": 0.9}}
    edited["digest"] = record_digest(edited)
    path.write_text(json.dumps(edited))
    assert "figures do not meet the BF16 limits" in refusal(detector)


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"passed": False, "failures": ["the BF16 model misses 1 of FP32's faces"]}, "failed its BF16 proof (the BF16"),
        ({"sha256": "0" * 64}, "proves another file (sha256 000000000000…)"),
        ({"cpu": HERE.to_dict() | {"bf16_class": "amx"}}, "was proven in BF16 on a amx CPU; this one is avx512_bf16"),
        ({"figures": FIGURES | {"landmark_error_px": {"max": 3.5}}}, "a landmark moved 3.50 px"),
        ({"figures": FIGURES | {"recall_candidate": 19}}, "hand-labelled faces lost"),
        ({"size": [640, 640]}, "was proven in BF16 at 640x640, not at 160x160"),
    ],
)
def test_a_proof_that_does_not_hold_here_refuses(detector: Path, changes: dict, words: str):
    record(detector, **changes)
    assert words in refusal(detector)


def test_a_cpu_without_bf16_refuses_whatever_is_recorded(detector: Path):
    record(detector)
    no_bf16 = OpenVinoCpu("2026.4.1", ("FP32", "INT8"), "AMD EPYC (AVX2)", "none")
    assert (
        refusal(detector, no_bf16)
        == "this CPU (AMD EPYC (AVX2)) has no BF16 in OpenVINO's capabilities (it lists FP32, INT8)"
    )
    assert "not installed" in refusal(detector, OpenVinoCpu(None))


def test_the_pipeline_refuses_an_unproven_model_in_one_line(detector: Path, batch_embedder: Path):
    record(detector)
    options = ModelOptions(detector, batch_embedder, size=(160, 160), precision="bf16", openvino=HERE)
    with pytest.raises(SpecError) as raised:
        pipeline_models(options)
    assert raised.value.field == "precision" and "\n" not in str(raised.value)
    assert str(raised.value).startswith(
        "embedder mobilefacenet_128d_batch.onnx cannot run in precision bf16: mobilefacenet_128d_batch.onnx has no "
        "BF16 proof beside it"
    )
    assert pipeline_models(options, embed=False)[0].path == detector
