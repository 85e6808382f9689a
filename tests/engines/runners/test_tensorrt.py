"""TensorRT engines for real: build through Polygraphy, load with the trt runner, compare
with the FP32 ONNX. Marked gpu, and skipped with the reason where TensorRT is missing (no
machine here has it: its wheels come from NVIDIA's index). No mock stands in for an engine."""

from pathlib import Path

import numpy as np
import pytest

from facebatch.configs.model_file import read_model_file
from facebatch.configs.precision import Precision
from facebatch.engines.build.engine_record import read_engine_record
from facebatch.engines.pipeline.preprocess import model_frames
from facebatch.engines.runners.onnxruntime_runner import OnnxRuntimeRunner
from facebatch.engines.runners.tensorrt_runner import TensorRtRunner, tensorrt_available

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not tensorrt_available(), reason="TensorRT and Polygraphy are not installed here"),
]


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


def test_the_engine_keeps_frames_apart_and_matches_the_fp32_onnx(engine: Path, small_detector: Path, photos):
    model = read_model_file(small_detector)
    frames = model_frames(model, model.spec.input_size, 8, photos)
    with TensorRtRunner(engine) as trt, OnnxRuntimeRunner(small_detector) as cpu:
        assert trt.provider.startswith("TensorRT ") and trt.precision == "fp16"
        batched, reference = trt.infer({"input.1": frames}), cpu.infer({"input.1": frames})
        alone = [trt.infer({"input.1": frames[i : i + 1]}) for i in range(8)]
    spec = read_engine_record(engine).spec
    for tensor in spec.outputs:
        assert np.all(
            np.abs(batched[tensor.name] - reference[tensor.name])
            <= tensor.atol + tensor.rtol * np.abs(reference[tensor.name])
        )
        assert np.max(np.abs(batched[tensor.name] - np.concatenate([a[tensor.name] for a in alone]))) < 1e-2
