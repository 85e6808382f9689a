"""What an engine is, without TensorRT: recipes per TensorRT version, the profile from the
spec, file names, the sidecar, and the refusal of plans built for another machine."""

import json
from dataclasses import replace
from pathlib import Path

import pytest

from facebatch.configs.arcface import arcface_spec
from facebatch.configs.precision import Precision
from facebatch.configs.scrfd import SCRFD_CONFIGS, head_layout, scrfd_spec
from facebatch.configs.spec import ShapeRange
from facebatch.core.errors import SpecError
from facebatch.engines.runners.engine_record import (
    BuildRecipe,
    EngineRecord,
    GpuInfo,
    build_recipe,
    check_engine_compatible,
    engine_filename,
    engine_profile,
    find_engine,
    read_engine_record,
    sidecar_path,
    tensorrt_major,
)

H200 = GpuInfo("NVIDIA H200", "9.0")


def detector(dynamic_size: bool = False):
    return scrfd_spec(
        "scrfd_10g_bnkps", head_layout(SCRFD_CONFIGS["scrfd_10g_bnkps"]), 320, 320, dynamic_size=dynamic_size
    )


def record(**changes) -> EngineRecord:
    spec = detector().at_fp16()
    base = EngineRecord(
        engine="scrfd_10g_320_batch_fp16_b1-32.plan",
        sha256="ab" * 32,
        precision=Precision.FP16,
        tensorrt_version="10.13.0.35",
        gpu=H200,
        profile=engine_profile(spec),
        recipe=build_recipe("10.13.0.35", Precision.FP16),
        spec=spec,
        source_onnx={"file": "scrfd_10g_320_batch.onnx", "sha256": "cd" * 32},
        reference_onnx={"file": "scrfd_10g_320_batch.onnx", "sha256": "cd" * 32},
        builder={"workspace_gib": 4.0, "timing_cache": None},
        build_seconds=41.5,
        verification={"passed": True},
        created="2026-11-21T12:00:00+00:00",
    )
    return replace(base, **changes)


def test_tensorrt_10_builds_fp32_onnx_with_the_fp16_flag_and_11_builds_the_fp16_onnx_typed():
    assert build_recipe("10.13.0.35", Precision.FP16) == BuildRecipe(
        Precision.FP32, strongly_typed=False, fp16_flag=True
    )
    assert build_recipe("11.0.0.1", Precision.FP16) == BuildRecipe(Precision.FP16, strongly_typed=True, fp16_flag=False)
    assert build_recipe("11.2.0", Precision.FP32) == BuildRecipe(Precision.FP32, strongly_typed=True, fp16_flag=False)
    assert build_recipe("10.0.1", Precision.FP32).fp16_flag is False
    assert "FP16 builder flag" in build_recipe("10.1", Precision.FP16).describe()
    with pytest.raises(SpecError, match="TensorRT 8.6.1 is too old"):
        build_recipe("8.6.1", Precision.FP16)
    with pytest.raises(SpecError, match="cannot read TensorRT's version"):
        tensorrt_major("ten")


def test_the_profile_comes_from_the_spec_unless_overridden():
    profile = engine_profile(detector())
    assert profile.batch == ShapeRange(1, 16, 32) and profile.size == (320, 320)
    assert profile.shapes == {"input.1": ((1, 3, 320, 320), (16, 3, 320, 320), (32, 3, 320, 320))}
    assert engine_profile(detector(), batch_max=8).batch == ShapeRange(1, 8, 8)  # opt follows a smaller max
    assert engine_profile(detector(), batch_min=4, batch_opt=4, batch_max=64).batch == ShapeRange(4, 4, 64)
    embedder = engine_profile(arcface_spec("arcface_r50"))
    assert embedder.shapes["input.1"][2] == (32, 3, 112, 112)
    with pytest.raises(SpecError, match="batch_max 4 is below batch_min 8") as refused:
        engine_profile(detector(), batch_min=8, batch_max=4)
    assert refused.value.field == "batch_max"
    with pytest.raises(SpecError, match="batch_min 64 is above the spec's largest batch, 32") as refused:
        engine_profile(detector(), batch_min=64)
    assert refused.value.field == "batch_min"
    with pytest.raises(SpecError, match=r"batch_opt 64 lies outside batch_min..batch_max \(1..32\)") as refused:
        engine_profile(detector(), batch_opt=64)
    assert refused.value.field == "batch_opt"


def test_a_dynamic_size_artifact_needs_a_size_and_a_fixed_one_refuses_another():
    with pytest.raises(SpecError, match="symbolic input shape, .* pass size, e.g. 320x320") as refused:
        engine_profile(detector(dynamic_size=True))
    assert refused.value.field == "size"
    profile = engine_profile(detector(dynamic_size=True), size=(480, 640))
    assert profile.size == (480, 640) and profile.shapes["input.1"][1] == (16, 3, 480, 640)
    with pytest.raises(SpecError, match="runs at 320x320 only; drop size 640x640"):
        engine_profile(detector(), size=(640, 640))


def test_engine_names_say_precision_and_batch_range():
    assert (
        engine_filename("scrfd_10g_320_batch", Precision.FP16, ShapeRange(1, 16, 32))
        == "scrfd_10g_320_batch_fp16_b1-32.plan"
    )
    assert (
        engine_filename("arcface_r50_batch_fp16", Precision.FP16, ShapeRange(1, 16, 32))
        == "arcface_r50_batch_fp16_b1-32.plan"
    )
    assert (
        engine_filename("arcface_r50_batch", Precision.FP32, ShapeRange(2, 4, 8)) == "arcface_r50_batch_fp32_b2-8.plan"
    )


def test_the_sidecar_round_trips_through_json(tmp_path: Path):
    original = record()
    plan = tmp_path / original.engine
    plan.write_bytes(b"plan bytes: no header")
    sidecar_path(plan).write_text(original.to_json())
    data = json.loads(sidecar_path(plan).read_text())
    assert data["tensorrt_version"] == "10.13.0.35" and data["gpu"] == {
        "name": "NVIDIA H200",
        "compute_capability": "9.0",
    }
    assert data["profile"]["shapes"]["input.1"]["max"] == [32, 3, 320, 320] and data["precision"] == "fp16"
    assert (
        data["builder"]["workspace_gib"] == 4.0
        and data["build_seconds"] == 41.5
        and data["source_onnx"]["sha256"] == "cd" * 32
    )
    assert read_engine_record(plan) == original
    assert plan.read_bytes() == b"plan bytes: no header"  # facebatch writes nothing into the plan itself


def test_unreadable_or_missing_sidecars_are_one_clear_line(tmp_path: Path):
    plan = tmp_path / "x.plan"
    with pytest.raises(SpecError, match="does not exist; build it from its ONNX file first"):
        read_engine_record(plan)
    plan.write_bytes(b"x")
    with pytest.raises(SpecError, match="has no sidecar x.json"):
        read_engine_record(plan)
    sidecar_path(plan).write_text("{not json")
    with pytest.raises(SpecError, match="unreadable"):
        read_engine_record(plan)
    sidecar_path(plan).write_text(json.dumps({"format": 0}))
    with pytest.raises(SpecError, match="format 0 is not 1; rebuild"):
        read_engine_record(plan)


def test_a_plan_for_another_tensorrt_or_gpu_is_refused_naming_both():
    check_engine_compatible(record(), "10.13.0.35", H200)
    with pytest.raises(
        SpecError, match=r"built for TensorRT 10.13.0.35, this machine has TensorRT 10.14.1.48; rebuild it here"
    ):
        check_engine_compatible(record(), "10.14.1.48", H200)
    with pytest.raises(SpecError, match=r"compute capability 9.0 \(NVIDIA H200\), this GPU is 8.9 \(NVIDIA L4\)"):
        check_engine_compatible(record(), "10.13.0.35", GpuInfo("NVIDIA L4", "8.9"))
    with pytest.raises(SpecError, match="TensorRT 10.13.0.35, this machine has TensorRT 11.0.0 and compute capability"):
        check_engine_compatible(record(), "11.0.0", GpuInfo("NVIDIA L4", "8.9"))


def test_the_trt_backend_finds_the_engine_built_from_exactly_this_onnx(tmp_path: Path):
    onnx_path = tmp_path / "onnx" / "scrfd_10g_320_batch.onnx"
    onnx_path.parent.mkdir()
    onnx_path.write_bytes(b"onnx")
    with pytest.raises(
        SpecError, match="no TensorRT engine built from scrfd_10g_320_batch.onnx .*; build the engine from .* first"
    ):
        find_engine(onnx_path, "cd" * 32, detector())
    plan = tmp_path / "engines" / "scrfd_10g_320_batch_fp16_b1-32.plan"
    plan.parent.mkdir()
    plan.write_bytes(b"plan")
    sidecar_path(plan).write_text(record().to_json())
    assert find_engine(onnx_path, "cd" * 32, detector()) == plan
    with pytest.raises(SpecError, match="no TensorRT engine"):  # built from another file of that name
        find_engine(onnx_path, "ef" * 32, detector())
