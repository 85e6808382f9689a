"""Triton serving on the GPU: an onnxruntime_onnx model and a tensorrt_plan model written by
'facebatch triton', served by a tritonserver that has those backends (NVIDIA's container; the
nvidia-pytriton build has the python backend only), each answering as the gates require: FP32
on CUDA like the CPU, the FP16 engine within the FP16 gate. Marked gpu: they skip with the
reason where the GPU, TensorRT or such a server is missing."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from facebatch.configs.model_file import read_model_file
from facebatch.core.errors import SpecError
from facebatch.engines.pipeline.preprocess import model_frames
from facebatch.engines.runners.onnxruntime_runner import OnnxRuntimeRunner
from facebatch.engines.runners.triton_client_runner import TritonClientRunner
from facebatch.engines.triton.install import TritonInstall, find_tritonserver
from facebatch.engines.triton.options import RepositoryOptions
from facebatch.engines.triton.ports import ServerPorts, free_ports
from facebatch.engines.triton.repository import triton_repository_from_artifacts
from facebatch.engines.triton.server import TritonServer
from tests.engines.gpu_gate import assert_passes_the_fp16_gate

pytest.importorskip("tritonclient", reason="the serve extra (tritonclient) talks to the server")


def server_with(backend: str) -> TritonInstall:
    """A tritonserver whose backends folder holds ``backend``, or a skip that says what is missing."""
    try:
        install = find_tritonserver()
    except SpecError as exc:
        pytest.skip(str(exc))
    if install.bundled:
        pytest.skip(f"nvidia-pytriton's tritonserver has the python backend only; {backend} needs NVIDIA's container")
    backends = install.binary.resolve().parent.parent / "backends"
    if not (backends / backend).is_dir():
        pytest.skip(f"{install.binary} has no {backend} backend in {backends}")
    return install


def serve(repository: Path, install: TritonInstall, log: Path) -> TritonServer:
    return TritonServer(repository, ServerPorts(*free_ports(2)), address="127.0.0.1", install=install, log_file=log)


@pytest.mark.gpu("cuda")
def test_an_onnxruntime_onnx_model_on_the_gpu_answers_like_the_cpu(small_detector: Path, photos, tmp_path: Path):
    install = server_with("onnxruntime")
    repository = triton_repository_from_artifacts(
        [small_detector], tmp_path / "repository", RepositoryOptions(runtime="onnxruntime", device="gpu")
    )
    assert 'platform: "onnxruntime_onnx"' in (repository.path / small_detector.stem / "config.pbtxt").read_text()
    model = read_model_file(small_detector)
    frames = model_frames(model, model.spec.input_size, 8, photos)
    with (
        serve(repository.path, install, tmp_path / "server.log") as server,
        TritonClientRunner(f"grpc://{server.grpc_url}", small_detector.stem) as served,
        OnnxRuntimeRunner(small_detector) as cpu,
    ):
        answered, expected = served.infer({"input.1": frames}), cpu.infer({"input.1": frames})
    for tensor in model.spec.outputs:  # FP32 on CUDA: the FP32 tolerances of each output's role
        limit = tensor.atol + tensor.rtol * np.abs(expected[tensor.name])
        assert np.all(np.abs(answered[tensor.name] - expected[tensor.name]) <= limit), tensor.name


@pytest.mark.gpu("tensorrt")
def test_a_tensorrt_plan_model_passes_the_fp16_gate_through_the_server(small_detector: Path, photos, tmp_path: Path):
    from facebatch.workflows.build import BuildOptions, build_engine_job

    install = server_with("tensorrt")
    onnx = tmp_path / "onnx"  # the layout 'facebatch build' makes: the repository finds the parsed ONNX in onnx/
    onnx.mkdir()
    for file in small_detector.parent.glob(f"{small_detector.stem}.*"):
        shutil.copyfile(file, onnx / file.name)
    source = onnx / small_detector.name
    plan = build_engine_job(source, BuildOptions(batch_max=8, out_dir=tmp_path / "engines", photos=photos)).path
    repository = triton_repository_from_artifacts(
        [plan], tmp_path / "repository", RepositoryOptions(runtime="tensorrt")
    )
    name = repository.models[0].name
    assert 'platform: "tensorrt_plan"' in (repository.path / name / "config.pbtxt").read_text()
    model = read_model_file(source)
    with (
        serve(repository.path, install, tmp_path / "server.log") as server,
        TritonClientRunner(f"grpc://{server.grpc_url}", name) as served,
    ):
        assert_passes_the_fp16_gate(model, served, model_frames(model, model.spec.input_size, 8, photos), (1, 8))
