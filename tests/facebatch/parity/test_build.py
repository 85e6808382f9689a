"""build both ways — the command line and ``facebatch.workflows.build.build_engine_job`` (the use case the command
calls; the API has no build of its own) — the same refusals where no engine can be built (checked before TensorRT
is looked for), and on a TensorRT machine the same engine verdict."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from facebatch.cli import main
from facebatch.core.errors import SpecError
from facebatch.engines.build.tensorrt_engine import BuilderOptions
from facebatch.engines.runners.availability import detect_runtimes
from facebatch.workflows.build import BuildOptions, build_engine_job
from tests.facebatch.parity.both_ways import assert_same_refusal


def test_bad_input_is_refused_the_same_way_before_tensorrt_is_looked_for(small_detector: Path, capsys):
    error = assert_same_refusal(
        ["build", str(small_detector), "-o", "engine.onnx"],
        lambda: build_engine_job(small_detector, BuildOptions(out=Path("engine.onnx"))),
        capsys,
    )
    assert isinstance(error, SpecError) and error.field == "out" and "must name a .plan file" in str(error)
    assert_same_refusal(
        ["build", str(small_detector), "--min", "8", "--max", "4"],
        lambda: build_engine_job(small_detector, BuildOptions(batch_min=8, batch_max=4)),
        capsys,
    )
    error = assert_same_refusal(
        ["build", str(small_detector), "--workspace-gib", "0"],
        lambda: build_engine_job(small_detector, BuildOptions(settings=BuilderOptions(workspace_gib=0))),
        capsys,
    )
    assert error.field == "workspace_gib" and str(error) == "workspace_gib must be positive, got 0 GiB"


@pytest.mark.skipif(
    detect_runtimes().tensorrt is not None, reason="TensorRT is installed here: the refusal does not apply"
)
def test_without_tensorrt_both_refuse_and_point_to_fp16(small_detector: Path, tmp_path: Path, capsys):
    plan = tmp_path / "e.plan"
    error = assert_same_refusal(
        ["build", str(small_detector), "-o", str(plan)],
        lambda: build_engine_job(small_detector, BuildOptions(out=plan)),
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
