"""verify both ways — the command line and the Python API — on the real fixtures: the same verdict and key
numbers (a detector made batchable by renaming its batch axis folds frames: checks 1, 2, 3, 5 and 6 fail;
our artifact passes against its torch model), the same written report, and the same refusals of bad input
(the same error class, exit code and line once the CLI has named the field as its flag)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from facebatch import api
from facebatch.cli import main
from facebatch.core.errors import SpecError, VerificationFailed
from tests.data.graphs import with_symbolic_batch
from tests.facebatch.parity.both_ways import assert_same_refusal, command_parser, error_lines

FIELD_FLAGS = command_parser("verify").get_default("field_flags")
QUICK = ["--batch-sizes", "1,2", "--size", "320"]


def judged(report: dict) -> list[tuple]:
    """What a verify report says, without when and where it ran."""
    return [(c["number"], c["status"], c["summary"]) for c in report["checks"]]


def refuse(report) -> None:
    """The API's way to stop on a failed verdict: raise the error the command exits with."""
    refusal = report.refusal()
    if refusal is not None:
        raise refusal


def test_a_batch_folding_detector_fails_the_same_way_both_ways(
    models_dir: Path, photos: list[Path], tmp_path: Path, capsys
):
    broken = with_symbolic_batch(models_dir / "det_500m.onnx", tmp_path / "det_500m_n.onnx")
    argv = ["verify", str(broken), *QUICK, "--images", str(photos[0]), "--json", str(tmp_path / "cli.json")]
    assert main(argv) == 1
    cli_line = error_lines(capsys)
    report = api.verify_model(
        broken, batch_sizes=(1, 2), sizes=[(320, 320)], photos=[photos[0]], json=tmp_path / "api.json"
    )
    assert not report.passed
    statuses = {c.number: c.status for c in report.checks}
    assert statuses == {1: "fail", 2: "fail", 3: "fail", 4: "skip", 5: "fail", 6: "fail"}
    written = [json.loads((tmp_path / f"{way}.json").read_text()) for way in ("cli", "api")]
    assert judged(written[0]) == judged(written[1]) == judged(report.to_dict())
    assert written[0]["options"] == written[1]["options"] and written[0]["frames"] == written[1]["frames"]
    assert written[0]["command"].startswith("facebatch verify") and written[1]["command"] is None
    with pytest.raises(VerificationFailed) as raised:
        refuse(report)
    assert cli_line == [f"facebatch: error: {raised.value}"] and "fails check(s) 1 batch independence" in cli_line[0]
    assert any("repairs this graph" in note for note in report.notes)  # fix can repair it: both ways say so


def test_our_artifact_passes_against_torch_and_strict_fails_a_skip_both_ways(small_detector: Path, capsys):
    argv = ["verify", str(small_detector), "--batch-sizes", "1,2", "--reference", "torch", "--json", "-"]
    assert main(argv) == 0
    cli = json.loads(capsys.readouterr().out)
    report = api.verify_model(small_detector, batch_sizes=(1, 2), reference="torch")
    assert report.passed and cli["passed"] and judged(cli) == judged(report.to_dict())
    parity = next(c for c in report.checks if c.number == 4)
    assert parity.status == "pass" and "matches torch" in parity.summary
    # strict: the skipped check 4 (no reference) fails the gate, and the CLI names the field as --strict
    error = assert_same_refusal(
        ["verify", str(small_detector), "--batch-sizes", "1,2", "--strict"],
        lambda: refuse(api.verify_model(small_detector, batch_sizes=(1, 2), strict=True)),
        capsys,
        FIELD_FLAGS,
    )
    assert isinstance(error, VerificationFailed) and error.field == "strict" and error.exit_code == 1
    assert "skipped under strict: " in str(error) and "4 reference parity (no reference given" in str(error)


@pytest.mark.parametrize(
    "flags, options, field",
    [
        (["--images", "{tmp}/nope.jpg"], {"photos": ["{tmp}/nope.jpg"]}, "photos"),
        (["--reference", "tourch"], {"reference": "tourch"}, "reference"),
        (["--mean", "0", "--std", "1"], {"embedder_values": {"mean": (0.0,), "std": (1.0,)}}, "embedder_spec"),
        (["--batch-sizes", "1"], {"batch_sizes": (1,)}, "batch_sizes"),
        (["--size", "640x960"], {"sizes": [(640, 960)]}, "size"),
        (["--json", "{models}/det_500m.onnx"], {"json": "{models}/det_500m.onnx"}, "json"),
    ],
)
def test_bad_input_is_refused_the_same_way_both_ways(
    flags: list[str], options: dict, field: str | None, models_dir: Path, tmp_path: Path, capsys
):
    fill = {"tmp": tmp_path, "models": models_dir}

    def filled(value):
        return value.format(**fill) if isinstance(value, str) else value

    argv = ["verify", str(models_dir / "det_500m.onnx"), *[filled(f) for f in flags]]
    given = {
        name: [filled(v) for v in value] if isinstance(value, list) else filled(value)
        for name, value in options.items()
    }
    error = assert_same_refusal(
        argv, lambda: api.verify_model(models_dir / "det_500m.onnx", **given), capsys, FIELD_FLAGS
    )
    assert error.exit_code == 2 and (field is None or error.field == field)
    assert "--" not in str(error)  # the library names fields; only the command line names flags


def test_the_reference_weights_need_a_torch_reference(models_dir: Path, capsys):
    error = assert_same_refusal(
        ["verify", str(models_dir / "det_500m.onnx"), "--reference-weights", str(models_dir / "det_500m.onnx")],
        lambda: api.verify_model(models_dir / "det_500m.onnx", reference_weights=models_dir / "det_500m.onnx"),
        capsys,
        FIELD_FLAGS,
    )
    assert isinstance(error, SpecError) and str(error) == "reference_weights applies to a torch reference only"
