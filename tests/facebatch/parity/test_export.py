"""export both ways — the command line and the Python API — on the real fixtures: the same artifact (the same
bytes, spec, weights' sha256 and parity numbers) from the same weights, and the same refusals of bad
input (the same error class, exit code and line once the CLI has named the field as its flag)."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest

from facebatch import api
from facebatch.cli import main
from facebatch.configs.spec_io import stored_spec
from facebatch.core.environment import file_sha256
from tests.facebatch.parity.both_ways import assert_same_refusal, command_parser

FIELD_FLAGS = command_parser("export").get_default("field_flags")


@pytest.mark.slow  # exports a model from torch
def test_the_same_weights_give_the_same_artifact_both_ways(models_dir: Path, photos: list[Path], tmp_path: Path):
    weights = models_dir / "det_500m.onnx"
    argv = ["export", "--weights", str(weights), "--size", "64", "--parity-batch-sizes", "1,2"]
    assert main([*argv, "--images", str(photos[0]), "--out", str(tmp_path / "cli")]) == 0
    result = api.export(
        weights=weights, size=(64, 64), parity_batch_sizes=(1, 2), photos=[photos[0]], out_dir=tmp_path / "api"
    )
    cli_path = tmp_path / "cli" / result.onnx_path.name
    assert cli_path.is_file() and result.onnx_path.parent == tmp_path / "api"
    assert file_sha256(cli_path) == file_sha256(result.onnx_path)  # the export is deterministic: the same bytes
    cli_model, api_model = onnx.load(str(cli_path)), onnx.load(str(result.onnx_path))
    assert stored_spec(cli_model) == stored_spec(api_model) == result.spec
    cli_sidecar = json.loads(cli_path.with_suffix(".json").read_text())
    assert cli_sidecar["weights"]["sha256"] == result.weights.sha256 and result.weights.kind == "onnx"
    cli_parity = [
        (r["label"], r["passed"], [o["max_abs_diff"] for o in r["outputs"]])
        for r in cli_sidecar["proof"]["parity_torch_vs_onnxruntime"]
    ]
    assert cli_parity == [(r.label, r.passed, [d.max_abs_diff for d in r.diffs]) for r in result.parity]
    assert [(label, passed) for label, passed, _ in cli_parity] == [("batch 1", True), ("batch 2", True)]
    shown = result.to_dict()
    assert shown["artifact"] == str(result.onnx_path) and shown["weights"]["kind"] == "onnx"
    assert "| batch 2 |" in result.to_markdown()


@pytest.mark.parametrize(
    "flags, call, field",
    [
        (["scrfd_10g_bnks"], {"model": "scrfd_10g_bnks"}, "model"),
        (["arcface_r50", "--size", "128"], {"model": "arcface_r50", "size": (128, 128)}, "size"),
        (["scrfd_500m", "--embedding-size", "256"], {"model": "scrfd_500m", "embedding_size": 256}, "embedding_size"),
        (["arcface_r50", "--dynamic-size"], {"model": "arcface_r50", "dynamic_size": True}, "dynamic_size"),
        (["scrfd_500m", "--weights", "{tmp}/w.pth"], {"model": "scrfd_500m", "weights": "{tmp}/w.pth"}, "weights"),
        (["scrfd_500m", "--images", "{tmp}/none"], {"model": "scrfd_500m", "photos": ["{tmp}/none"]}, "photos"),
        (["scrfd_500m", "--out", "{tmp}/file"], {"model": "scrfd_500m", "out_dir": "{tmp}/file"}, "out"),
        ([], {}, "model"),
    ],
)
def test_bad_input_is_refused_the_same_way_both_ways(flags: list[str], call: dict, field: str, tmp_path: Path, capsys):
    (tmp_path / "file").write_text("a file where a folder should be")
    (tmp_path / "none").mkdir()

    def filled(value):
        return value.format(tmp=tmp_path) if isinstance(value, str) else value

    given = {
        name: [filled(v) for v in value] if isinstance(value, list) else filled(value) for name, value in call.items()
    }
    given.setdefault("out_dir", tmp_path / "out")
    argv = ["export", *[filled(f) for f in flags]] + ([] if "--out" in flags else ["--out", str(tmp_path / "out")])
    error = assert_same_refusal(argv, lambda: api.export(**given), capsys, FIELD_FLAGS)
    assert error.exit_code == 2 and error.field == field
    assert "--" not in str(error)  # the library names fields; only the command line names flags
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())  # nothing written
