"""The CLI: --help everywhere, one clear error line with exit 2 for bad input, a real export."""

from pathlib import Path

import pytest

from facebatch.cli import build_parser, main


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["export", "--help"],
        ["models", "--help"],
        ["describe", "--help"],
        ["verify", "--help"],
        ["fix", "--help"],
        ["bench", "--help"],
    ],
)
def test_help_on_every_command(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 0
    assert "usage: facebatch" in capsys.readouterr().out


def test_every_subcommand_documents_itself():
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command")
    assert set(commands.choices) == {
        "export",
        "models",
        "describe",
        "verify",
        "fix",
        "convert",
        "build",
        "bench",
        "detect",
        "embed",
        "compare",
        "index",
        "search",
        "triton",
        "serve",
        "quantize",
        "prove-bf16",
        "release",
        "card",
    }
    for sub in commands.choices.values():
        assert sub.description


@pytest.mark.parametrize(
    "argv, message",
    [
        (["export", "scrfd_10g_bnks"], "did you mean scrfd_10g_bnkps"),
        (["export", "scrfd_500m", "--size", "300"], "not a positive multiple of 32"),
        (["export", "scrfd_500m", "--out", "/proc/facebatch-nope"], "pass a writable --out"),
        (["export", "scrfd_500m", "--weights", "/nonexistent/w.pth"], "does not exist"),
        (["export"], "name a model"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err_lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("facebatch: error:")]
    assert len(err_lines) == 1 and message in err_lines[0]


def test_foreign_embedder_and_truncated_onnx(models_dir: Path, tmp_path: Path, capsys):
    assert main(["export", "--weights", str(models_dir / "mobilefacenet_128d.onnx"), "--out", str(tmp_path)]) == 2
    assert "not an ArcFace network this tool knows" in capsys.readouterr().err
    cut = tmp_path / "cut.onnx"
    cut.write_bytes((models_dir / "det_2.5g.onnx").read_bytes()[:4096])
    assert main(["export", "--weights", str(cut), "--out", str(tmp_path)]) == 2
    assert "truncated" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.onnx"]


@pytest.mark.slow  # exports a model from torch
def test_export_from_official_onnx_infers_the_variant(models_dir: Path, photos, tmp_path: Path, capsys):
    images = photos[0].parent
    argv = [
        "export",
        "--weights",
        str(models_dir / "det_500m.onnx"),
        "--out",
        str(tmp_path),
        "--name",
        "mine",
        "--images",
        str(images),
        "--parity-batch-sizes",
        "1,2",
    ]
    assert main(argv) == 0
    assert (tmp_path / "mine.onnx").is_file() and (tmp_path / "mine.json").is_file()
    shown = capsys.readouterr().out
    assert "scrfd_500m_bnkps" in shown and "batch 2" in shown


def test_models_lists_every_variant(capsys):
    assert main(["models"]) == 0
    shown = capsys.readouterr().out
    assert "scrfd_34g" in shown and "9.803M" in shown
    assert "arcface_r200" in shown and "118.83M" in shown and "arcface_w600k_r50_batch.onnx" in shown
    assert (
        "scrfd_10g_320_batch.onnx" in shown and "scrfd_500m_nokps_320_batch.onnx" in shown
    )  # default artifact per variant
    rows = {line.split("│")[1].strip(): line for line in shown.splitlines() if line.count("│") > 3}
    assert (
        rows["arcface_r50"].split("│")[2].strip() == "r50" and rows["arcface_mbf"].split("│")[2].strip() == "mbf"
    )  # short names


def test_library_warnings_stay_hidden_unless_verbose(monkeypatch, capsys):
    import warnings

    from facebatch.cli import models
    from facebatch.core.errors import WeightsError

    def noisy(args):
        warnings.warn("a library's UserWarning", UserWarning, stacklevel=1)
        raise WeightsError("the one line")

    monkeypatch.setattr(models, "run", noisy)  # the handler a library warns in, then fails
    with warnings.catch_warnings(record=True) as shown:
        assert main(["models"]) == 2
    assert not shown and capsys.readouterr().err.strip() == "facebatch: error: the one line"
    with pytest.warns(UserWarning, match="a library's UserWarning"):
        assert main(["--verbose", "models"]) == 2
