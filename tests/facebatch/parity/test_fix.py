"""fix both ways — the command line and ``facebatch.fix`` — on the official batch-1 files: the same repaired file,
the same verification of it (the API used to skip it), and the same refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from facebatch import api
from facebatch.cli import main
from facebatch.core.environment import file_sha256
from facebatch.core.errors import OutputError, VerificationFailed
from tests.data.graphs import frame_picker
from tests.facebatch.parity.both_ways import assert_same_refusal, command_parser, error_lines

SMALL = ["--size", "64", "--batch-sizes", "1,2"]  # the official detector run at 64x64: a proof in a blink


def aliases() -> dict[str, str]:
    return command_parser("fix").get_default("field_flags")


def test_fix_writes_the_same_file_and_verifies_it_both_ways(models_dir: Path, tmp_path: Path):
    source = models_dir / "mobilefacenet_128d.onnx"
    cli, ours = tmp_path / "cli" / "mfn_batch.onnx", tmp_path / "api" / "mfn_batch.onnx"
    assert main(["fix", str(source), "-o", str(cli), "--batch-sizes", "1,2", "--json", str(tmp_path / "cli.json")]) == 0
    result = api.fix(source, ours, batch_sizes=(1, 2))
    assert result.written and result.passed and result.refusal() is None
    assert file_sha256(cli) == file_sha256(ours)  # the record names the source, not the target: byte for byte
    sidecars = [json.loads(path.with_suffix(".json").read_text()) for path in (cli, ours)]
    for sidecar in sidecars:
        del sidecar["created"]
    assert sidecars[0] == sidecars[1]
    assert sidecars[0]["license"]["name"] == "unknown"  # mobilefacenet_128d: weights facebatch does not know
    report = json.loads((tmp_path / "cli.json").read_text())
    assert result.verify is not None  # the API verifies what it wrote, against the original, as the command does
    checks = {c["number"]: c["status"] for c in report["checks"]}
    assert checks == {c.number: c.status for c in result.verify.checks} and report["passed"]
    assert "mobilefacenet_128d.onnx (run one frame at a time" in next(
        c.summary for c in result.verify.checks if c.number == 4
    )
    assert json.loads(result.to_json())["verify"]["passed"] and "proof: repaired per-frame" in result.to_markdown()


def test_the_verification_of_the_repaired_file_refuses_the_same_way(models_dir: Path, tmp_path: Path, capsys):
    """A trained detector fixed and checked without photos under strict: check 3 finds no face and skips, which
    strict fails. The file is written both ways; both say why it fails, with exit 1."""
    source = models_dir / "det_500m.onnx"
    capsys.readouterr()
    code = main(["fix", str(source), "-o", str(tmp_path / "cli" / "d.onnx"), *SMALL, "--strict"])
    lines = error_lines(capsys)
    result = api.fix(source, tmp_path / "api" / "d.onnx", size=(64, 64), batch_sizes=(1, 2), strict=True)
    refusal = result.refusal()
    assert result.written and not result.passed and isinstance(refusal, VerificationFailed)
    # the repaired file's sidecar carries the licence of the original's weights (InsightFace's, by its sha256)
    assert json.loads(result.sidecar.read_text())["license"]["name"] == "insightface-non-commercial"
    assert "3 decoded independence" in str(refusal)
    assert (code, lines) == (refusal.exit_code, [f"facebatch: error: {refusal}"])


def test_bad_input_is_refused_the_same_way(models_dir: Path, tmp_path: Path, capsys):
    source = models_dir / "det_500m.onnx"
    error = assert_same_refusal(
        ["fix", str(source), "-o", str(source)], lambda: api.fix(source, source), capsys, aliases()
    )
    assert isinstance(error, OutputError) and error.field == "out" and "never overwrites an input" in str(error)
    picker = frame_picker(tmp_path / "pick.onnx", "Gather")  # picks frames on axis 0: no surgery repairs that
    out = tmp_path / "never.onnx"
    error = assert_same_refusal(["fix", str(picker), "-o", str(out)], lambda: api.fix(picker, out), capsys, aliases())
    assert isinstance(error, VerificationFailed) and "cannot repair by surgery" in str(error) and not out.exists()
    # what the checks of the written file cannot run with is refused before the repair is written (it used to be
    # written, then refused)
    error = assert_same_refusal(
        ["fix", str(source), "-o", str(out), "--batch-sizes", "1"],
        lambda: api.fix(source, out, batch_sizes=(1,)),
        capsys,
        aliases(),
    )
    assert error.field == "batch_sizes" and "at least one batch size of 2" in str(error) and not out.exists()
    error = assert_same_refusal(
        ["fix", str(source), "-o", str(out), "--nms-thresh", "0"],
        lambda: api.fix(source, out, nms_thresh=0.0),
        capsys,
        aliases(),
    )
    assert error.field == "nms_thresh" and not out.exists()


@pytest.mark.parametrize("field, flag", [("out", "--out"), ("photos", "--images")])
def test_the_fields_fix_names_are_its_flags(field: str, flag: str):
    from facebatch.cli.errors import flag_for

    assert flag_for(command_parser("fix"), field, aliases()) == flag
