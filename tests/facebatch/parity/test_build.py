"""build both ways — the command line and ``facebatch.build`` (both call the use case
``facebatch.workflows.build.build_engine_job``) — the same refusals where no engine can be built (checked before
TensorRT is looked for), and on a TensorRT machine the same engine verdict."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from facebatch import api
from facebatch.cli import main
from facebatch.configs.precision import Precision
from facebatch.core.errors import SpecError
from facebatch.engines.runners.availability import detect_runtimes
from facebatch.workflows.build import BuildOptions, build_engine_job
from tests.facebatch.parity.both_ways import assert_same_refusal


def test_bad_input_is_refused_the_same_way_before_tensorrt_is_looked_for(small_detector: Path, capsys):
    error = assert_same_refusal(
        ["build", str(small_detector), "-o", "engine.onnx"],
        lambda: api.build(small_detector, "engine.onnx"),
        capsys,
    )
    assert isinstance(error, SpecError) and error.field == "out" and "must name a .plan file" in str(error)
    assert_same_refusal(
        ["build", str(small_detector), "--min", "8", "--max", "4"],
        lambda: api.build(small_detector, batch_min=8, batch_max=4),
        capsys,
    )
    error = assert_same_refusal(
        ["build", str(small_detector), "--workspace-gib", "0"],
        lambda: api.build(small_detector, workspace_gib=0),
        capsys,
    )
    assert error.field == "workspace_gib" and str(error) == "workspace_gib must be positive, got 0 GiB"


def test_what_the_command_line_cannot_say_the_options_refuse_before_the_model_is_read(tmp_path: Path):
    absent = tmp_path / "absent.onnx"  # never read: the options are refused first
    with pytest.raises(SpecError, match="precision 'int8': engines are built in fp16 or fp32") as refused:
        api.build(absent, precision="int8")
    assert refused.value.field == "precision"
    for bound in ("batch_min", "batch_opt", "batch_max"):
        with pytest.raises(SpecError, match=f"{bound} must be a whole number of at least 1, got 0") as refused:
            build_engine_job(absent, BuildOptions(**{bound: 0}))
        assert refused.value.field == bound
    assert BuildOptions(precision="fp32").precision is Precision.FP32  # type: ignore[arg-type]


@pytest.mark.skipif(
    detect_runtimes().tensorrt is not None, reason="TensorRT is installed here: the refusal does not apply"
)
def test_without_tensorrt_both_refuse_and_point_to_fp16(small_detector: Path, tmp_path: Path, capsys):
    plan = tmp_path / "e.plan"
    error = assert_same_refusal(
        ["build", str(small_detector), "-o", str(plan)],
        lambda: api.build(small_detector, plan),
        capsys,
    )
    assert "converting the model to FP16" in str(error) and list(tmp_path.iterdir()) == []


@pytest.mark.gpu("tensorrt")
def test_the_same_engine_verdict_both_ways(small_detector: Path, photos: list[Path], tmp_path: Path):
    cli, ours = tmp_path / "cli" / "e.plan", tmp_path / "api" / "e.plan"
    assert main(["build", str(small_detector), "-o", str(cli), "--max", "8", "--images", str(photos[0].parent)]) == 0
    result = build_engine_job(small_detector, BuildOptions(out=ours, batch_max=8, photos=photos))
    sidecar = json.loads(cli.with_suffix(".json").read_text())
    record = result.to_dict()["record"]
    assert sidecar["proof"]["passed"] and result.record.verification["passed"]
    for key in ("precision", "profile", "recipe", "tensorrt_version"):
        assert json.loads(json.dumps(record[key], default=str)) == sidecar[key], key
