"""convert and build from the command line: exit codes, one error line, nothing half-written."""

from pathlib import Path

import pytest

from facebatch.cli import main
from facebatch.engines.runners.availability import detect_runtimes


def error_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("facebatch: error:")]


def test_convert_writes_the_fp16_artifact_and_its_reports(small_detector: Path, photos, tmp_path: Path, capsys):
    out = tmp_path / "small_fp16.onnx"
    code = main(
        [
            "convert",
            str(small_detector),
            "--fp16",
            "-o",
            str(out),
            "--batch-sizes",
            "1,2",
            "--images",
            str(photos[0].parent),
            "--json",
            str(tmp_path / "r.json"),
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0 and out.is_file() and out.with_suffix(".json").is_file() and (tmp_path / "r.json").is_file()
    assert "(fp16): PASS (strict)" in printed and f"wrote {out}" in printed


def test_a_trained_detector_without_photos_is_refused_before_any_work(small_detector: Path, tmp_path: Path, capsys):
    """Its gate is strict and noise frames show no face: it used to convert everything, then fail on check 3."""
    assert main(["convert", str(small_detector), "--fp16", "-o", str(tmp_path / "x.onnx"), "--batch-sizes", "1,2"]) == 2
    err = capsys.readouterr().err
    assert "is a trained detector: its FP16 gate compares the faces it finds, so pass --images" in err
    assert "to FP16" not in err and list(tmp_path.iterdir()) == []  # no conversion started


def test_convert_needs_the_fp16_flag(small_detector: Path, capsys):
    with pytest.raises(SystemExit) as refused:
        main(["convert", str(small_detector)])
    assert refused.value.code == 2 and "--fp16" in capsys.readouterr().err


def test_a_failing_conversion_exits_1_and_writes_nothing(tmp_path: Path, capsys):
    from tests.facebatch.workflows.test_convert import overflowing_embedder

    source = overflowing_embedder(tmp_path / "clamped.onnx")
    assert main(["convert", str(source), "--fp16", "--batch-sizes", "1,2"]) == 1
    assert error_lines(capsys) == [
        "facebatch: error: clamped_fp16.onnx fails check(s) 4 reference parity; nothing was written"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clamped.onnx"]


@pytest.mark.skipif(
    detect_runtimes().tensorrt is not None, reason="TensorRT is installed here: the refusal does not apply"
)
def test_build_without_tensorrt_exits_2_and_points_to_convert(small_detector: Path, tmp_path: Path, capsys):
    assert main(["build", str(small_detector), "-o", str(tmp_path / "e.plan")]) == 2
    (line,) = error_lines(capsys)
    assert "TensorRT is not installed here" in line and "converting the model to FP16 makes the verified FP16" in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--size", "640"], "scrfd_500m_bnkps runs at 64x64 only; drop --size 640x640"),
        (["--min", "8", "--max", "4"], "--max 4 is below batch_min 8"),
        (["-o", "engine.onnx"], "--out must name a .plan file, not engine.onnx"),
    ],
)
def test_build_names_bad_input_before_looking_for_tensorrt(argv, message, small_detector: Path, capsys):
    assert main(["build", str(small_detector), *argv]) == 2
    assert error_lines(capsys) == [f"facebatch: error: {message}"]


def test_the_trt_backend_is_refused_cleanly_without_tensorrt(small_detector: Path, capsys):
    if detect_runtimes().tensorrt is not None:
        pytest.skip("TensorRT is installed here")
    assert main(["bench", str(small_detector), "--backend", "trt", "--iters", "1"]) == 2
    (line,) = error_lines(capsys)
    assert "the trt backend runs TensorRT engines, and TensorRT is not installed here" in line
