"""quantize both ways — the command line and ``facebatch.quantize`` — with the same defaults (the API's bench used
to default off, and it could not set recipes, max_drop, force or per_channel): the same INT8 file, the same
accuracy gate and refusal, the same refusal of bad input."""

from __future__ import annotations

import dataclasses
import inspect
import json
from pathlib import Path

from facebatch import api
from facebatch.cli import main
from facebatch.core.environment import file_sha256
from facebatch.core.errors import SpecError, VerificationFailed
from facebatch.workflows.quantize import QuantizeOptions
from tests.facebatch.parity.both_ways import assert_same_refusal, command_parser, error_lines
from tests.facebatch.parity.test_convert import photo_folder

ONE_RECIPE = ["--recipe", "u8s8", "--no-bench"]  # one candidate: the parity, not the search, is tested here


def test_the_api_takes_quantizes_options_with_their_defaults():
    defaults = {f.name: f.default for f in dataclasses.fields(QuantizeOptions) if f.default is not dataclasses.MISSING}
    parameters = inspect.signature(api.quantize).parameters
    shared = set(defaults) & set(parameters)
    assert {"bench", "recipes", "max_drop", "force", "per_channel", "mixed", "detector", "threads"} <= shared
    assert {name: parameters[name].default for name in shared} == {name: defaults[name] for name in shared}
    assert parameters["bench"].default is True  # as the command: FP32 and INT8 timed side by side


def test_quantize_writes_the_same_int8_file_both_ways(small_detector: Path, photos: list[Path], tmp_path: Path):
    images = photo_folder(photos, tmp_path / "photos")
    cli, ours = tmp_path / "cli" / "small_int8.onnx", tmp_path / "api" / "small_int8.onnx"
    argv = ["quantize", str(small_detector), "--images", str(images), "-o", str(cli), *ONE_RECIPE]
    assert main([*argv, "--json", str(tmp_path / "cli.json")]) == 0
    result = api.quantize(small_detector, [images], ours, recipes=["u8s8"], bench=False)
    assert result.written and result.passed and result.refusal() is None
    assert file_sha256(cli) == file_sha256(ours)
    report = json.loads((tmp_path / "cli.json").read_text())
    ours_dict = result.to_dict()
    for key in ("passed", "failures", "limits", "quantized_nodes", "calibration_sha256", "quantization"):
        assert report[key] == json.loads(json.dumps(ours_dict[key])), key
    assert [t["summary"] for t in report["recipes_tried"]] == [t["summary"] for t in ours_dict["recipes_tried"]]


def test_the_accuracy_gate_refuses_the_same_way(
    small_detector: Path, batch_embedder: Path, photos: list[Path], tmp_path: Path, capsys
):
    """The fixed mobilefacenet in INT8, on the faces the small detector finds: refused, nothing written, the same
    line (force, then a mixed search, named as the command's flags)."""
    images = photo_folder(photos, tmp_path / "photos", count=6)
    cli, ours = tmp_path / "cli" / "mfn_int8.onnx", tmp_path / "api" / "mfn_int8.onnx"
    argv = ["quantize", str(batch_embedder), "--images", str(images), "--detector", str(small_detector), "-o", str(cli)]
    capsys.readouterr()
    code = main([*argv, *ONE_RECIPE])
    lines = error_lines(capsys)
    result = api.quantize(batch_embedder, [images], ours, detector=small_detector, recipes=["u8s8"], bench=False)
    refusal = result.refusal()
    assert not result.written and isinstance(refusal, VerificationFailed) and refusal.field == "force"
    assert code == refusal.exit_code == 1 and not cli.exists() and not ours.exists()
    assert lines == [f"facebatch: error: {str(refusal).replace('force writes', '--force writes', 1)}"]
    assert "nothing was written (--force writes it anyway; a mixed search keeps FP32 only the layers" in lines[0]


def test_bad_input_is_refused_the_same_way(small_detector: Path, photos: list[Path], tmp_path: Path, capsys):
    aliases = command_parser("quantize").get_default("field_flags")
    images = photo_folder(photos, tmp_path / "photos", count=1)
    error = assert_same_refusal(
        ["quantize", str(small_detector), "--images", str(images), "--max-drop", "1.5"],
        lambda: api.quantize(small_detector, [images], max_drop=1.5),
        capsys,
        aliases,
    )
    assert isinstance(error, SpecError) and error.field == "max_drop"
    capsys.readouterr()
    main(["quantize", str(small_detector), "--images", str(images), "--max-drop", "1.5"])
    assert "facebatch: error: --max-drop must be in [0, 1), got 1.5" in capsys.readouterr().err
    error = assert_same_refusal(
        ["quantize", str(small_detector), "--images", str(images), "-o", str(small_detector)],
        lambda: api.quantize(small_detector, [images], small_detector),
        capsys,
        aliases,
    )
    assert error.field == "out" and "quantize never overwrites its source" in str(error)
