"""TensorRT engines for real: build through Polygraphy (TensorRT 10: the FP16 flag on the FP32
ONNX; 11 and later: the FP16 ONNX, strongly typed), load with the trt runner, hold each to the
gate 'facebatch build' holds it to; the builder's options, an ArcFace engine, an engine of a
--dynamic-size export, and the face pipeline on --backend trt. Marked gpu("tensorrt"): they
skip with the reason where TensorRT, Polygraphy or a GPU is missing, and no mock stands in."""

from __future__ import annotations

from pathlib import Path

import pytest

from facebatch.cli import main
from facebatch.configs.model_file import read_model_file
from facebatch.configs.precision import Precision
from facebatch.engines.pipeline.compare import cosine_similarity
from facebatch.engines.pipeline.opening import open_pipeline
from facebatch.engines.pipeline.preprocess import model_frames
from facebatch.engines.runners.engine_record import STRONGLY_TYPED_FROM, read_engine_record, tensorrt_major
from facebatch.engines.runners.tensorrt_runner import TensorRtRunner
from tests.engines.gpu_gate import assert_passes_the_fp16_gate

pytestmark = pytest.mark.gpu("tensorrt")


@pytest.fixture(scope="module")
def engine(small_detector: Path, photos, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from facebatch.workflows.build import BuildOptions, build_engine_job

    out = tmp_path_factory.mktemp("engines") / "small_fp16_b1-8.plan"
    return build_engine_job(small_detector, BuildOptions(batch_max=8, out=out, photos=photos)).path


def test_the_engine_and_its_sidecar_describe_the_build(engine: Path, small_detector: Path):
    record = read_engine_record(engine)
    assert record.precision is Precision.FP16 and record.profile.batch.max == 8 and record.verification["passed"]
    assert record.reference_onnx["sha256"] == read_model_file(small_detector).sha256
    assert not engine.read_bytes().startswith(b"{")  # a plain plan: trtexec and Triton load it as is


def test_tensorrt_11_builds_the_fp16_onnx_strongly_typed(engine: Path, small_detector: Path):
    """TensorRT ≥ 11 has no FP16 flag: the engine is parsed from the verified FP16 ONNX made beside the source."""
    record = read_engine_record(engine)
    if tensorrt_major(record.tensorrt_version) < STRONGLY_TYPED_FROM:
        assert not record.recipe.strongly_typed and record.recipe.fp16_flag
        assert record.source_onnx["sha256"] == record.reference_onnx["sha256"]  # the FP32 ONNX, with the flag
        return
    assert record.recipe.strongly_typed and not record.recipe.fp16_flag
    assert record.recipe.onnx_precision is Precision.FP16
    fp16 = small_detector.with_name(f"{small_detector.stem}_fp16.onnx")
    assert record.source_onnx["sha256"] == read_model_file(fp16).sha256


def test_the_engine_keeps_frames_apart_and_passes_the_fp16_gate(engine: Path, small_detector: Path, photos):
    model = read_model_file(small_detector)
    frames = model_frames(model, model.spec.input_size, 8, photos)
    with TensorRtRunner(engine) as trt:
        assert trt.provider.startswith("TensorRT ") and trt.precision == "fp16"
        assert_passes_the_fp16_gate(model, trt, frames, (1, 8))


def test_workspace_and_timing_cache_reach_the_builder(small_detector: Path, photos, tmp_path: Path):
    cache, images = tmp_path / "timing.cache", str(photos[0].parent)
    for run in ("first", "second"):  # the second build reads the cache the first wrote
        out = tmp_path / f"{run}.plan"
        argv = ["build", str(small_detector), "--max", "4", "--workspace-gib", "1", "--timing-cache", str(cache)]
        assert main([*argv, "-o", str(out), "--images", images]) == 0, run
        assert cache.is_file() and cache.stat().st_size > 0, run
        assert read_engine_record(out).builder == {"workspace_gib": 1.0, "timing_cache": str(cache)}


def test_an_arcface_engine_passes_the_fp16_gate(batch_embedder: Path, photos, tmp_path: Path):
    from facebatch.workflows.build import BuildOptions, build_engine_job

    result = build_engine_job(batch_embedder, BuildOptions(batch_max=8, out=tmp_path / "mbf.plan", photos=photos))
    assert result.record.verification["passed"] and result.record.spec.head is None
    model = read_model_file(batch_embedder)
    with TensorRtRunner(result.path) as trt:
        assert_passes_the_fp16_gate(model, trt, model_frames(model, model.spec.input_size, 8, photos), (1, 8))


def test_an_engine_of_a_dynamic_size_export_runs_at_the_size_it_was_built_for(models_dir: Path, photos, tmp_path):
    from facebatch.exporter.scrfd_export import ScrfdExportRequest, export_scrfd
    from facebatch.workflows.build import BuildOptions, build_engine_job

    request = ScrfdExportRequest(
        weights=models_dir / "det_500m.onnx", height=64, width=64, out_dir=tmp_path, dynamic_size=True
    )
    dynamic = export_scrfd(request).onnx_path
    result = build_engine_job(dynamic, BuildOptions(size=(96, 128), batch_max=4, out=tmp_path / "d.plan"))
    assert result.record.profile.size == (96, 128) and result.record.verification["passed"]
    model = read_model_file(dynamic, size=(96, 128))
    with TensorRtRunner(result.path) as trt:
        assert_passes_the_fp16_gate(model, trt, model_frames(model, (96, 128), 4, photos), (1, 4))


def test_the_face_pipeline_on_trt_finds_the_faces_the_cpu_finds(real_detector: Path, batch_embedder: Path, photos):
    """--backend trt finds each artifact's engine in engines/ beside its folder, as 'facebatch build' writes it."""
    from facebatch.workflows.build import BuildOptions, build_engine_job

    detector, embedder = read_model_file(real_detector), read_model_file(batch_embedder)
    for model in (detector, embedder):
        build_engine_job(model.path, BuildOptions(out_dir=model.path.parent.parent / "engines", photos=photos))
    with open_pipeline(detector, embedder) as cpu:
        expected = {r.path.name: r for r in cpu.run(photos)}
    with open_pipeline(detector, embedder, backend="trt") as trt:
        found = {r.path.name: r for r in trt.run(photos)}
    for name, result in expected.items():
        assert len(found[name].faces.scores) == len(result.faces.scores), name
        if len(result.faces.scores):
            assert abs(found[name].faces.boxes - result.faces.boxes).max() < 2.0, name  # pixels, FP16 boxes
            cosines = [cosine_similarity(a, b) for a, b in zip(found[name].embeddings, result.embeddings, strict=True)]
            assert min(cosines) >= 0.999, name  # the FP16 embedding gate
