"""describe both ways — the command line and ``facebatch.describe`` — on the real foreign embedder: the same YAML,
printed or written, and the same refusals."""

from __future__ import annotations

from pathlib import Path

from facebatch import api
from facebatch.cli import main
from facebatch.core.errors import OutputError, SpecError
from tests.facebatch.parity.both_ways import assert_same_refusal, command_parser


def test_the_same_spec_printed_and_written_both_ways(models_dir: Path, tmp_path: Path, capsys):
    model = models_dir / "mobilefacenet_128d.onnx"
    capsys.readouterr()
    assert main(["describe", str(model), "--mean", "127.5", "--std", "128"]) == 0
    printed = capsys.readouterr().out
    result = api.describe(model, mean=127.5, std=128.0)
    assert printed == result.yaml and result.written is None and "mean: [127.5, 127.5, 127.5]" in printed
    cli, ours = tmp_path / "cli" / "mfn.yaml", tmp_path / "api" / "mfn.yaml"
    for folder in (cli.parent, ours.parent):
        folder.mkdir()
    assert main(["describe", str(model), "--mean", "127.5", "--std", "128", "-o", str(cli)]) == 0
    assert api.describe(model, ours, mean=127.5, std=128.0).written == ours
    assert cli.read_text() == ours.read_text()  # model: is relative to the spec's folder, the same both ways


def test_bad_input_is_refused_the_same_way(models_dir: Path, capsys):
    detector, embedder = models_dir / "det_500m.onnx", models_dir / "mobilefacenet_128d.onnx"
    error = assert_same_refusal(["describe", str(detector)], lambda: api.describe(detector), capsys)
    assert isinstance(error, SpecError) and "describe writes specs of foreign face embedders" in str(error)
    aliases = command_parser("describe").get_default("field_flags")
    error = assert_same_refusal(
        ["describe", str(embedder), "-o", str(embedder)], lambda: api.describe(embedder, embedder), capsys, aliases
    )
    assert isinstance(error, OutputError) and error.field == "out"
