"""The repository writer on real artifacts: every config.pbtxt parses with Triton's own schema
and says what the graph says (inputs, outputs, types, the profile's batch), engines keep to
their profile, fixed-batch graphs are refused, and --force replaces only what facebatch wrote."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
from google.protobuf import text_format

from facebatch.configs.model_file import read_model_file
from facebatch.configs.precision import Precision
from facebatch.configs.spec_io import spec_from_dict
from facebatch.core.environment import file_sha256
from facebatch.core.errors import OutputError, SpecError
from facebatch.core.onnx_graph import io_dims
from facebatch.engines.runners.engine_record import EngineRecord, GpuInfo, build_recipe, engine_profile
from facebatch.engines.triton.defaults import FACE_OUTPUTS, MANIFEST, PIPELINE_FILE, PIPELINE_MODEL
from facebatch.engines.triton.model_config import ModelConfig, TritonTensor, preferred_batch_sizes
from facebatch.engines.triton.options import RepositoryOptions
from facebatch.engines.triton.repository import plan_repository, triton_repository_from_artifacts

model_config_pb2 = pytest.importorskip(
    "tritonclient.grpc.model_config_pb2", reason="the serve extra (tritonclient) parses Triton's schema"
)


def parsed(path: Path):
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def type_name(value: int) -> str:
    return model_config_pb2.DataType.Name(value)


def assert_matches_graph(config, onnx_path: Path, max_batch: int) -> None:
    """Names, types and dims (minus the batch axis) as in the graph itself."""
    model = onnx.load(str(onnx_path))
    dims = io_dims(model)
    expected_type = {onnx.TensorProto.FLOAT: "TYPE_FP32", onnx.TensorProto.FLOAT16: "TYPE_FP16"}
    for served, graph in ((config.input, model.graph.input), (config.output, model.graph.output)):
        assert [t.name for t in served] == [v.name for v in graph]
        for tensor, value in zip(served, graph, strict=False):
            assert type_name(tensor.data_type) == expected_type[value.type.tensor_type.elem_type]
            assert list(tensor.dims) == [d if isinstance(d, int) else -1 for d in dims[value.name][1:]]
    assert config.max_batch_size == max_batch


@pytest.fixture(scope="module")
def python_repository(real_detector: Path, batch_embedder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("triton") / "repository"
    triton_repository_from_artifacts(
        [real_detector, batch_embedder], out, RepositoryOptions(runtime="python", pipeline=True, instances=2)
    )
    return out


def test_onnxruntime_models_follow_the_graph_and_the_profile(
    small_detector: Path, batch_embedder: Path, tmp_path: Path
):
    out = tmp_path / "repo"
    repository = triton_repository_from_artifacts(
        [small_detector, batch_embedder], out, RepositoryOptions(device="cpu", instances=3)
    )
    spec = read_model_file(small_detector).spec
    detector = parsed(out / small_detector.stem / "config.pbtxt")
    assert detector.platform == "onnxruntime_onnx" and detector.name == small_detector.stem
    assert_matches_graph(detector, small_detector, spec.batch.max)
    assert list(detector.dynamic_batching.preferred_batch_size) == [spec.batch.opt, spec.batch.max]
    assert detector.dynamic_batching.max_queue_delay_microseconds == RepositoryOptions().max_queue_delay_us
    group = detector.instance_group[0]
    assert group.count == 3 and model_config_pb2.ModelInstanceGroup.Kind.Name(group.kind) == "KIND_CPU"
    assert (out / small_detector.stem / "1" / "model.onnx").read_bytes() == small_detector.read_bytes()
    embedder = parsed(out / batch_embedder.stem / "config.pbtxt")
    assert_matches_graph(embedder, batch_embedder, 32)
    assert {m.role for m in repository.models} == {"detector", "embedder"}
    manifest = json.loads((out / MANIFEST).read_text())
    assert sorted(manifest["files"]) == sorted(repository.written) and "README.md" in manifest["files"]
    readme = (out / "README.md").read_text()
    assert (
        "docker run" in readme
        and "perf_analyzer -m " + small_detector.stem in readme
        and "facebatch bench --triton" in readme
    )
    docker = next(line for line in readme.splitlines() if line.startswith("docker run"))
    published = [part for part in docker.split() if part.startswith("-p")]  # never on every interface
    assert published and all(part.startswith("-p127.0.0.1:") for part in published)
    assert "--http-restricted-api=shared-memory,logging,trace:" in docker and "--grpc-restricted-protocol=" in docker


def test_the_default_device_is_the_gpu_and_a_smaller_max_batch_caps_the_preferred_sizes(
    small_detector: Path, tmp_path: Path
):
    triton_repository_from_artifacts([small_detector], tmp_path / "repo", RepositoryOptions(max_batch=8))
    config = parsed(tmp_path / "repo" / small_detector.stem / "config.pbtxt")
    assert config.max_batch_size == 8 and list(config.dynamic_batching.preferred_batch_size) == [8]
    assert model_config_pb2.ModelInstanceGroup.Kind.Name(config.instance_group[0].kind) == "KIND_GPU"


def test_the_python_runtime_and_the_pipeline(python_repository: Path, real_detector: Path, batch_embedder: Path):
    detector = parsed(python_repository / real_detector.stem / "config.pbtxt")
    assert detector.backend == "python" and not detector.platform
    assert_matches_graph(detector, real_detector, 32)
    assert detector.parameters["onnx_file"].string_value == "model.onnx"
    assert (
        "class TritonPythonModel(OnnxModel)" in (python_repository / real_detector.stem / "1" / "model.py").read_text()
    )
    pipeline = parsed(python_repository / PIPELINE_MODEL / "config.pbtxt")
    assert pipeline.backend == "python" and pipeline.max_batch_size == 32 and pipeline.instance_group[0].count == 2
    assert [(t.name, type_name(t.data_type), list(t.dims)) for t in pipeline.input] == [("IMAGES", "TYPE_STRING", [1])]
    assert [t.name for t in pipeline.output] == list(FACE_OUTPUTS)
    assert list(pipeline.output[-1].dims) == [128]  # the embedder's size, from its graph
    assert float(pipeline.parameters["det_thresh"].string_value) == 0.5
    limits = {k: int(pipeline.parameters[k].string_value) for k in ("max_photo_pixels", "max_batch_pixels")}
    assert limits == {"max_photo_pixels": 100_000_000, "max_batch_pixels": 400_000_000}  # the stub's memory bound
    description = json.loads((python_repository / PIPELINE_MODEL / "1" / PIPELINE_FILE).read_text())
    assert (
        description["detector"]["model"] == real_detector.stem
        and description["embedder"]["model"] == batch_embedder.stem
    )
    assert spec_from_dict(description["detector"]["spec"]) == read_model_file(real_detector).spec
    assert description["detector"]["size"] == [640, 640]
    assert [t["name"] for t in description["embedder"]["outputs"]] == [
        o.name for o in onnx.load(str(batch_embedder)).graph.output
    ]


def test_a_fixed_batch_axis_is_refused_pointing_to_fix(models_dir: Path, tmp_path: Path):
    with pytest.raises(
        SpecError,
        match=r"det_500m.onnx has a fixed batch axis \(1\) on 'input.1'.*repair it with fix .*det_500m_batch.onnx",
    ):
        plan_repository([models_dir / "det_500m.onnx"], tmp_path / "repo", RepositoryOptions())
    assert not (tmp_path / "repo").exists()


def test_the_pipeline_needs_one_detector_with_landmarks_and_one_embedder(
    small_detector: Path, real_detector: Path, tmp_path: Path
):
    with pytest.raises(SpecError, match="pipeline needs exactly one embedder among the artifacts, got 0"):
        plan_repository([small_detector], tmp_path, RepositoryOptions(pipeline=True))
    with pytest.raises(SpecError, match="exactly one detector .* got 2"):
        plan_repository([small_detector, real_detector], tmp_path, RepositoryOptions(pipeline=True))
    with pytest.raises(SpecError, match="two artifacts would both be served as"):
        plan_repository([small_detector, small_detector], tmp_path, RepositoryOptions())


def test_options_that_cannot_work_are_refused():
    with pytest.raises(SpecError, match="TensorRT engines run on a GPU only"):
        RepositoryOptions(runtime="tensorrt", device="cpu")
    with pytest.raises(SpecError, match="drop device gpu"):
        RepositoryOptions(runtime="python", device="gpu")
    with pytest.raises(SpecError, match="^instances must be at least 1"):
        RepositoryOptions(instances=0)
    with pytest.raises(SpecError, match="^runtime must be one of"):
        RepositoryOptions(runtime="tflite")


def test_an_existing_folder_is_refused_and_force_replaces_only_our_files(small_detector: Path, tmp_path: Path):
    out = tmp_path / "repo"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="exists and is not empty; pass force"):
        triton_repository_from_artifacts([small_detector], out, RepositoryOptions())
    first = triton_repository_from_artifacts([small_detector], out, RepositoryOptions(force=True, max_batch=8))
    assert (out / "notes.txt").read_text() == "mine"
    # a second run with --force replaces ours (a different max batch), keeps the user's file
    (out / small_detector.stem / "1" / "extra.bin").write_bytes(b"user data")
    triton_repository_from_artifacts([small_detector], out, RepositoryOptions(force=True, max_batch=4))
    assert parsed(out / small_detector.stem / "config.pbtxt").max_batch_size == 4
    assert (out / "notes.txt").read_text() == "mine" and (out / small_detector.stem / "1" / "extra.bin").exists()
    assert sorted(json.loads((out / MANIFEST).read_text())["files"]) == sorted(first.written)
    # a file of the user's where one of ours would go is never overwritten
    other = tmp_path / "other"
    (other / small_detector.stem).mkdir(parents=True)
    (other / small_detector.stem / "config.pbtxt").write_text("# the user's own\n")
    with pytest.raises(OutputError, match=f"not: {small_detector.stem}/config.pbtxt"):
        triton_repository_from_artifacts([small_detector], other, RepositoryOptions(force=True))
    assert (other / small_detector.stem / "config.pbtxt").read_text() == "# the user's own\n"


def _engine(small_detector: Path, folder: Path, batch_max: int) -> Path:
    """A plan file with the sidecar 'facebatch build' writes, its source ONNX in onnx/ beside
    engines/ (TensorRT is not needed to serve one: the repository writer only reads the sidecar)."""
    (folder / "onnx").mkdir(parents=True)
    (folder / "engines").mkdir()
    source = folder / "onnx" / small_detector.name
    shutil.copyfile(small_detector, source)
    spec = read_model_file(source).spec
    plan = folder / "engines" / f"{small_detector.stem}_fp32_b1-{batch_max}.plan"
    plan.write_bytes(b"serialized engine bytes")
    record = EngineRecord(
        engine=plan.name,
        sha256=file_sha256(plan),
        precision=Precision.FP32,
        tensorrt_version="10.13.0.35",
        gpu=GpuInfo("NVIDIA H100", "9.0"),
        profile=engine_profile(spec, batch_max=batch_max),
        recipe=build_recipe("10.13.0.35", Precision.FP32),
        spec=spec,
        source_onnx={"file": source.name, "sha256": file_sha256(source)},
        reference_onnx={"file": source.name, "sha256": file_sha256(source)},
    )
    plan.with_suffix(".json").write_text(record.to_json())
    return plan


def test_an_engine_is_served_within_its_profile(small_detector: Path, tmp_path: Path):
    plan = _engine(small_detector, tmp_path / "build", batch_max=16)
    out = tmp_path / "repo"
    triton_repository_from_artifacts([plan], out, RepositoryOptions(runtime="tensorrt"))
    config = parsed(out / plan.stem / "config.pbtxt")
    assert config.platform == "tensorrt_plan" and config.max_batch_size == 16
    assert_matches_graph(config, small_detector, 16)
    assert (out / plan.stem / "1" / "model.plan").read_bytes() == plan.read_bytes()
    assert model_config_pb2.ModelInstanceGroup.Kind.Name(config.instance_group[0].kind) == "KIND_GPU"
    with pytest.raises(
        SpecError, match=r"max_batch 32 is more than engine .* takes \(built for batch 1-16\); ask for at most 16"
    ):
        plan_repository([plan], tmp_path / "refused", RepositoryOptions(runtime="tensorrt", max_batch=32))
    with pytest.raises(SpecError, match="is a TensorRT engine; serve it with the tensorrt runtime"):
        plan_repository([plan], tmp_path / "refused", RepositoryOptions())
    plan.write_bytes(b"another engine")
    with pytest.raises(SpecError, match="is not the one its sidecar .* describes"):
        plan_repository([plan], tmp_path / "refused", RepositoryOptions(runtime="tensorrt"))


def test_a_model_config_renders_every_field_triton_reads():
    config = ModelConfig(
        name="m",
        max_batch_size=4,
        platform="onnxruntime_onnx",
        inputs=(TritonTensor("x", np.dtype(np.float16), (3, -1, -1)),),
        outputs=(TritonTensor("y", np.dtype(np.int32), (1,), reshape=()),),
        parameters={"k": 'a "quoted" value'},
    )
    message = text_format.Parse(config.to_pbtxt(), model_config_pb2.ModelConfig())
    assert type_name(message.input[0].data_type) == "TYPE_FP16" and list(message.input[0].dims) == [3, -1, -1]
    assert message.output[0].HasField("reshape") and list(message.output[0].reshape.shape) == []
    assert message.parameters["k"].string_value == 'a "quoted" value'
    assert preferred_batch_sizes(16, 32) == (16, 32) and preferred_batch_sizes(16, 8) == (8,)
    with pytest.raises(SpecError, match="exactly one of platform and backend"):
        replace(config, backend="python")


def test_a_batch_budget_below_one_photo_is_refused():
    assert RepositoryOptions(max_photo_pixels=10, max_batch_pixels=30).batch_pixels == 30
    with pytest.raises(SpecError, match=r"max_batch_pixels 5 is below the photo limit \(10 pixels\)"):
        RepositoryOptions(max_photo_pixels=10, max_batch_pixels=5)
