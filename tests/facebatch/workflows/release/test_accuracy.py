"""The accuracy floor per format (issue 37): a twin whose recall drops fails it, naming the twin and the figure; the
floor is read from its text form, and a floor that is no floor is refused in one line naming the field."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from facebatch.cli import main
from facebatch.configs.model_file import read_model_file
from facebatch.core.errors import SpecError
from facebatch.workflows.quantize import QuantizeOptions, quantize_int8
from facebatch.workflows.release.accuracy import Twin, artifact_line, judge_artifact
from facebatch.workflows.release.options import AccuracyFloor


@pytest.mark.slow  # quantizes the real SCRFD-2.5G at 640
def test_the_floor_fails_an_int8_twin_whose_recall_drops(real_detector: Path, photos: list[Path], tmp_path: Path):
    """An INT8 forced through quantize with a bad calibration (two photos without a face, per-tensor u8u8): judged
    against FP32 on every photo, it finds 19 of the 20 hand-labelled faces (measured) and the floor fails it."""
    blank = [p for p in photos if p.name in ("gauss.png", "no_face.png")]
    options = QuantizeOptions(photos=blank, bench=False, force=True, recipes=("u8u8",), per_channel=False)
    forced = quantize_int8(real_detector, options, tmp_path / "bad_int8.onnx")
    assert forced.written
    twin = Twin("INT8", "onnx/bad_int8.onnx", read_model_file(forced.path))
    fp32 = read_model_file(real_detector)
    record = judge_artifact(fp32, f"onnx/{real_detector.name}", [twin], photos, None, AccuracyFloor())
    reference, row = record["rows"]
    assert reference["twin"] == "FP32" and reference["recall"] == reference["labelled"] == 20
    assert row["recall"] < reference["recall"] and row["floor"] == "fail" and record["status"] == "fail"
    assert artifact_line(record).startswith(
        f"INT8 bad_int8.onnx: recall {row['recall']}/20 of the hand-labelled faces, FP32 20/20: below the floor"
    )
    lenient = judge_artifact(fp32, "onnx/x.onnx", [twin], photos, None, AccuracyFloor(recall=0.9, missed=1.0))
    assert lenient["status"] == "pass" and lenient["rows"][1]["floor"] == "pass"  # the floor decides, nothing else


def test_the_floor_reads_its_text_and_refuses_what_is_no_floor(small_detector: Path, tmp_path: Path, capsys):
    assert AccuracyFloor.parse("recall=0.9, landmark_px=3") == AccuracyFloor(recall=0.9, landmark_px=3.0)
    assert AccuracyFloor.parse({"cosine": 0.95}).cosine == 0.95 and AccuracyFloor().pairs == 1.0
    for text, message in [
        ("recall=2", "accuracy_floor: recall must be in [0, 1], got 2.0"),
        ("speed=1", "accuracy_floor: speed is not a figure; name some of recall, landmark_px, missed, cosine, pairs"),
        ("recall", "accuracy_floor: 'recall' is not NAME=NUMBER"),
        ("landmark_px=-1", "accuracy_floor: landmark_px must be at least 0, got -1.0"),
    ]:
        with pytest.raises(SpecError, match=re.escape(message)) as refused:
            AccuracyFloor.parse(text)
        assert refused.value.field == "accuracy_floor"
    argv = ["release", "--artifact", str(small_detector), "--out", str(tmp_path), "--accuracy-floor", "cosine=1.5"]
    assert main(argv) == 2
    assert "--accuracy-floor: cosine must be in [0, 1], got 1.5" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # refused before any work
