"""OpenVINO behind the runner protocol: the ONNX output names, f32, explicit threads, the
same numbers as onnxruntime and no cross-frame mixing, on a real artifact."""

from pathlib import Path

import numpy as np
import pytest

from facebatch.configs.model_file import read_model_file
from facebatch.core.errors import EngineError, SpecError
from facebatch.engines.pipeline.preprocess import model_frames
from facebatch.engines.runners.onnxruntime_runner import OnnxRuntimeRunner
from facebatch.engines.runners.openvino_runner import OpenVinoRunner


def test_openvino_names_outputs_as_the_graph_and_agrees_with_onnxruntime(small_detector: Path, photos):
    model = read_model_file(small_detector)
    frames = model_frames(model, model.spec.input_size, 3, photos[:3])
    with OpenVinoRunner(small_detector, threads=1) as ov, OnnxRuntimeRunner(small_detector) as ort:
        assert ov.output_names == ort.output_names == model.spec.output_names  # not OpenVINO's internal names
        assert (
            ov.provider.startswith("OpenVINO ")
            and " CPU (" in ov.provider
            and ov.precision == "fp32"
            and ov.threads == 1
        )
        assert ov.inputs[0].shape == (None, 3, 64, 64)  # the batch stays dynamic
        together, reference = ov.infer({"input.1": frames}), ort.infer({"input.1": frames})
        alone = [ov.infer({"input.1": frames[i : i + 1]}) for i in range(3)]
        with pytest.raises(SpecError, match="axis 2 must be 64"):
            ov.infer({"input.1": np.zeros((1, 3, 96, 64), np.float32)})
    for name in reference:
        assert np.max(np.abs(together[name] - reference[name])) < 1e-4, name  # real weights: the spec's atol
        assert max(float(np.max(np.abs(together[name][i] - alone[i][name][0]))) for i in range(3)) < 1e-5, name


def test_a_file_openvino_cannot_read_is_one_line(tmp_path: Path):
    with pytest.raises(SpecError, match="does not exist"):
        OpenVinoRunner(tmp_path / "none.onnx").__enter__()
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x08\x07garbage")
    with pytest.raises(EngineError) as info:
        OpenVinoRunner(broken).__enter__()
    assert "\n" not in str(info.value)


def test_the_precision_is_a_parameter_f32_by_default(batch_embedder: Path):
    from facebatch.engines.runners.factory import RunnerOptions, make_onnx_runner

    model = read_model_file(batch_embedder)
    default = make_onnx_runner("openvino", model, model.spec.input_size, RunnerOptions(threads=1, compile_cache=False))
    asked = make_onnx_runner(
        "openvino", model, model.spec.input_size, RunnerOptions(threads=1, compile_cache=False, bf16=True)
    )
    assert (default.inference_precision, default.precision) == ("f32", "fp32")
    assert (asked.inference_precision, asked.precision) == ("bf16", "bf16")
    with pytest.raises(SpecError, match="precision bf16 runs on the openvino backend only, not on ort-cpu") as raised:
        make_onnx_runner("ort-cpu", model, model.spec.input_size, RunnerOptions(bf16=True))
    assert raised.value.field == "precision"
    with pytest.raises(SpecError, match="OpenVINO precision 'fp8' is not one of f32, bf16"):
        OpenVinoRunner(batch_embedder, precision="fp8")


def test_the_bf16_class_and_capability_are_read_from_the_cpu():
    from facebatch.engines.runners.openvino_runner import OpenVinoCpu, bf16_cpu_class

    assert bf16_cpu_class({"avx2", "avx512_bf16"}) == "avx512_bf16"
    assert bf16_cpu_class({"avx2", "avx512_bf16", "amx_bf16"}) == "amx"
    assert bf16_cpu_class({"avx2", "fma"}) == "none"
    assert OpenVinoCpu("2026.4.1", ("BF16", "FP32")).bf16 and OpenVinoCpu("2026.4.1", ("BF16",)).bf16_problem() is None
    assert not OpenVinoCpu(None, ("BF16",)).bf16
