"""The runner protocol on onnxruntime: metadata read once, feeds checked against it with an
error that says what was expected, timing and provider, one-line runtime errors, models in
memory, the intermediate-tensor capability, and graphs run as written."""

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

from facebatch.core.errors import EngineError, SpecError
from facebatch.engines.runners.base import IntermediateTensors, TensorMeta, check_feed
from facebatch.engines.runners.onnxruntime_runner import OnnxRuntimeIntermediateRunner, OnnxRuntimeRunner
from tests.data.graphs import batch_mean_leak, float_conv_between_qdq, make_model


def scale_graph() -> onnx.ModelProto:
    """y = 2·x + 1 on [batch, 3, 4, 4] (fixed channels and size, symbolic batch)."""
    nodes = [
        helper.make_node("Mul", ["x", "two"], ["t"], name="double"),
        helper.make_node("Add", ["t", "one"], ["y"], name="plus_one"),
    ]
    return make_model(
        nodes,
        [("x", ["batch", 3, 4, 4])],
        [("y", ["batch", 3, 4, 4])],
        {"two": np.array(2.0, np.float32), "one": np.array(1.0, np.float32)},
    )


def test_metadata_is_read_once_on_entry_and_inference_is_timed():
    runner = OnnxRuntimeRunner(scale_graph(), label="scale")
    assert runner.inputs == () and runner.provider == ""  # nothing loaded yet
    with runner:
        assert runner.inputs == (TensorMeta("x", np.dtype(np.float32), ("batch", 3, 4, 4)),)
        assert runner.output_names == ["y"] and runner.provider == "CPUExecutionProvider"
        x = np.arange(2 * 48, dtype=np.float32).reshape(2, 3, 4, 4)
        out = runner.infer({"x": x})
        np.testing.assert_array_equal(out["y"], 2 * x + 1)
        assert runner.last_inference_seconds is not None and runner.last_inference_seconds >= 0
    with pytest.raises(EngineError, match="used outside its 'with' block"):
        runner.infer({"x": x})


@pytest.mark.parametrize(
    "feed, message",
    [
        (
            {"x": np.zeros((2, 3, 4, 4), np.float64)},
            "input x float32 \\[batch, 3, 4, 4\\] got float64 .*convert the feed to float32",
        ),
        ({"x": np.zeros((3, 4, 4), np.float32)}, "rank 3, not 4"),
        ({"x": np.zeros((2, 3, 5, 4), np.float32)}, "axis 2 must be 4"),
        ({"image": np.zeros((2, 3, 4, 4), np.float32)}, "takes inputs \\['x'\\], got \\['image'\\]"),
    ],
)
def test_a_feed_that_does_not_fit_says_what_was_expected(feed, message):
    with OnnxRuntimeRunner(scale_graph(), label="scale") as runner:
        with pytest.raises(SpecError, match=message):
            runner.infer(feed)


def test_one_symbol_takes_one_value_across_inputs():
    expected = [
        TensorMeta("a", np.dtype(np.float32), ("batch", 2)),
        TensorMeta("b", np.dtype(np.float32), ("batch", 2)),
    ]
    check_feed("m", expected, {"a": np.zeros((3, 2), np.float32), "b": np.zeros((3, 2), np.float32)})
    with pytest.raises(SpecError, match="symbol 'batch' is 3 in a but 4 in b"):
        check_feed("m", expected, {"a": np.zeros((3, 2), np.float32), "b": np.zeros((4, 2), np.float32)})


def test_runtime_failures_are_one_line_engine_errors(tmp_path: Path):
    # a batch fixed to 1 that the checks are told to skip: onnxruntime itself refuses
    model = make_model([helper.make_node("Identity", ["x"], ["y"])], [("x", [1, 2])], [("y", [1, 2])])
    with OnnxRuntimeRunner(model, label="fixed") as runner:
        with pytest.raises(EngineError) as info:
            runner.infer({"x": np.zeros((3, 2), np.float32)}, check_inputs=False)
    assert str(info.value).startswith("onnxruntime cannot run fixed: ") and "\n" not in str(info.value)
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x08\x07garbage")
    with pytest.raises(EngineError, match="onnxruntime cannot load broken.onnx"):
        OnnxRuntimeRunner(broken).__enter__()
    with pytest.raises(SpecError, match="does not exist"):
        OnnxRuntimeRunner(tmp_path / "missing.onnx").__enter__()


def test_the_intermediate_capability_returns_every_tensor_in_graph_order(tmp_path: Path):
    model = onnx.load(str(batch_mean_leak(tmp_path / "leak.onnx")))
    frames = np.random.default_rng(0).standard_normal((2, 3, 112, 112)).astype(np.float32)
    with OnnxRuntimeIntermediateRunner(model) as runner, OnnxRuntimeRunner(model) as plain:
        assert isinstance(runner, IntermediateTensors) and not isinstance(plain, IntermediateTensors)
        assert runner.intermediate_names == ["y", "batch_mean", "small", "embedding"]
        assert runner.output_names == ["embedding"]  # the protocol's outputs stay the graph's own
        every = runner.infer_intermediates({"input.1": frames})
        np.testing.assert_allclose(every["batch_mean"], every["y"].mean(axis=0, keepdims=True), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(
            runner.infer({"input.1": frames})["embedding"], plain.infer({"input.1": frames})["embedding"], atol=1e-6
        )


def test_a_float_conv_between_quantise_pairs_keeps_its_float_weights(tmp_path: Path):
    """An INT8 recipe's FP32-kept layer runs in FP32: onnxruntime's WeightBiasQuantization would
    store its weights in 8 bits per tensor (the 0.003 weight as 1/255)."""
    x = np.zeros((1, 2, 4, 4), np.float32)
    x[:, 0] = 0.5
    x[:, 1] = np.arange(16, dtype=np.float32).reshape(4, 4) * 16  # 0…240, whole steps of the input's scale 1
    with OnnxRuntimeRunner(float_conv_between_qdq(tmp_path / "kept_fp32.onnx")) as runner:
        dark_channel = runner.infer({"input.1": x})["output"][0, 1]
    step = 1 / 255  # the output's quantisation step
    assert np.abs(dark_channel - np.round(0.003 * x[0, 1] / step) * step).max() < step / 2
