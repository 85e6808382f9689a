"""convert --fp16 both ways — the command line and ``facebatch.convert`` — on the small real detector: the same
FP16 file, the same gate (a graph that loses too much in FP16 is refused by both, nothing written), the same
refusal of bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from facebatch import api
from facebatch.cli import main
from facebatch.core.environment import file_sha256
from facebatch.core.errors import SpecError, VerificationFailed
from tests.facebatch.parity.both_ways import assert_same_refusal, command_parser, error_lines
from tests.facebatch.workflows.test_convert import overflowing_embedder


def photo_folder(photos: list[Path], folder: Path, count: int = 4) -> Path:
    """The first ``count`` fixture photos in a folder of their own (``--images`` takes one path)."""
    folder.mkdir(parents=True)
    for photo in photos[:count]:
        shutil.copyfile(photo, folder / photo.name)
    return folder


def test_convert_writes_the_same_fp16_file_both_ways(small_detector: Path, photos: list[Path], tmp_path: Path):
    images = photo_folder(photos, tmp_path / "photos")
    cli, ours = tmp_path / "cli" / "small_fp16.onnx", tmp_path / "api" / "small_fp16.onnx"
    argv = ["convert", str(small_detector), "--fp16", "-o", str(cli), "--batch-sizes", "1,2", "--images", str(images)]
    assert main([*argv, "--json", str(tmp_path / "cli.json")]) == 0
    result = api.convert(small_detector, ours, photos=[images], batch_sizes=(1, 2))
    assert result.written and result.passed and result.refusal() is None
    assert file_sha256(cli) == file_sha256(ours)
    report = json.loads((tmp_path / "cli.json").read_text())
    assert report["passed"] and [c["status"] for c in report["checks"]] == [c.status for c in result.report.checks]
    assert json.loads(result.to_json())["written"] and "# convert to FP16" in result.to_markdown()


def test_the_fp16_gate_refuses_the_same_way(tmp_path: Path, capsys):
    source = overflowing_embedder(tmp_path / "clamped.onnx")  # its first weight overflows FP16: check 4 fails
    capsys.readouterr()
    code = main(["convert", str(source), "--fp16", "--batch-sizes", "1,2"])
    lines = error_lines(capsys)
    result = api.convert(source, batch_sizes=(1, 2))
    refusal = result.refusal()
    assert not result.written and isinstance(refusal, VerificationFailed)
    assert (code, lines) == (refusal.exit_code, [f"facebatch: error: {refusal}"])
    assert str(refusal) == "clamped_fp16.onnx fails check(s) 4 reference parity; nothing was written"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clamped.onnx"]


def test_bad_input_is_refused_the_same_way(small_detector: Path, tmp_path: Path, capsys):
    aliases = command_parser("convert").get_default("field_flags")
    out = tmp_path / "x.onnx"
    error = assert_same_refusal(  # a trained detector's gate compares faces: no photos, no conversion started
        ["convert", str(small_detector), "--fp16", "-o", str(out)],
        lambda: api.convert(small_detector, out),
        capsys,
        aliases,
    )
    assert isinstance(error, SpecError) and error.field == "photos" and list(tmp_path.iterdir()) == []
    capsys.readouterr()
    assert main(["convert", str(small_detector), "--fp16", "-o", str(out)]) == 2
    assert "so pass --images that show faces" in capsys.readouterr().err  # the field named as the flag
    plan = tmp_path / "x.plan"
    error = assert_same_refusal(
        ["convert", str(small_detector), "--fp16", "-o", str(plan)], lambda: api.convert(small_detector, plan), capsys
    )
    assert error.field == "out" and str(error).startswith("out must name an .onnx file")
