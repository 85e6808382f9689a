"""FP16 conversion: the batch axis stays, FP32 at the edges unless asked, the spec and
metadata say what happened, and out-of-range weights are counted."""

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from facebatch.configs.model_file import read_model_file
from facebatch.configs.precision import Precision
from facebatch.core.errors import SpecError
from facebatch.core.onnx_graph import io_dims
from facebatch.engines.build.fp16 import check_batch_kept, convert_to_fp16, out_of_range_weights, stamp_fp16
from facebatch.engines.runners.onnxruntime_runner import OnnxRuntimeRunner


def elem_types(model: onnx.ModelProto) -> dict[str, int]:
    return {v.name: v.type.tensor_type.elem_type for v in list(model.graph.input) + list(model.graph.output)}


def test_a_detector_converts_with_its_batch_symbolic_and_fp32_edges(small_detector: Path):
    target = read_model_file(small_detector)
    conversion = convert_to_fp16(target.model, target.spec)
    model = conversion.model
    assert {name: dims[0] for name, dims in io_dims(model).items()} == {name: "batch" for name in io_dims(target.model)}
    assert set(elem_types(model).values()) == {TensorProto.FLOAT}
    assert any(i.data_type == TensorProto.FLOAT16 for i in model.graph.initializer)
    assert "Resize" in conversion.present_blocked  # the converter's block list keeps the upsampling FP32
    assert conversion.spec.precision is Precision.FP16 and all(t.atol >= 0.01 for t in conversion.spec.outputs)
    assert target.model.graph.initializer[0].data_type == TensorProto.FLOAT  # the source is left untouched


def test_fp16_io_makes_the_edges_fp16_and_the_runner_takes_fp32_frames(small_detector: Path, tmp_path: Path):
    target = read_model_file(small_detector)
    conversion = convert_to_fp16(target.model, target.spec, fp16_io=True)
    assert set(elem_types(conversion.model).values()) == {TensorProto.FLOAT16}
    path = tmp_path / "fp16_io.onnx"
    onnx.save(stamp_fp16(conversion, target.props, small_detector.name, target.sha256), path)
    frames = np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32)
    with OnnxRuntimeRunner(path) as fp16, OnnxRuntimeRunner(small_detector) as fp32:
        assert fp16.inputs[0].dtype == np.float16
        ours, reference = (
            fp16.infer({"input.1": frames}),
            fp32.infer({"input.1": frames}),
        )  # FP32 frames are cast on the way in
    for name in reference:
        assert (
            ours[name].dtype == np.float16 and np.max(np.abs(ours[name].astype(np.float32) - reference[name])) < 0.1
        ), name


def test_the_metadata_records_precision_and_source_and_the_spec_travels(small_detector: Path, tmp_path: Path):
    target = read_model_file(small_detector)
    conversion = convert_to_fp16(target.model, target.spec)
    path = tmp_path / "fp16.onnx"
    onnx.save(stamp_fp16(conversion, target.props, small_detector.name, target.sha256), path)
    converted = read_model_file(path)
    assert converted.props["precision"] == "fp16" and converted.props["source_sha256"] == target.sha256
    assert converted.props["source_onnx"] == small_detector.name and converted.props["fp16_io"] == "False"
    assert converted.props["weights_source"] == target.props["weights_source"]  # the source's own metadata is kept
    assert converted.spec == conversion.spec
    with pytest.raises(SpecError, match="already fp16; convert its FP32 artifact"):
        convert_to_fp16(converted.model, converted.spec)


def tiny_model(weights: np.ndarray, batch: str | int = "batch") -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, weights.size])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, weights.size])
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "w"], ["y"])], "tiny", [x], [y], [numpy_helper.from_array(weights, "w")]
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_weights_out_of_fp16_range_are_counted_per_value():
    model = tiny_model(np.array([1e-9, -1e-8, 0.0, 0.5, 2e5, -3e4, 1e4], np.float32))
    assert out_of_range_weights(model) == (2, 2)  # zero stays zero; 1e4 is within range


def test_a_changed_batch_axis_is_refused():
    before = tiny_model(np.ones(3, np.float32))
    check_batch_kept(before, before)
    with pytest.raises(
        SpecError, match=r"changed the batch axis of x: 'batch' → 1, y: 'batch' → 1; nothing was written"
    ):
        check_batch_kept(before, tiny_model(np.ones(3, np.float32), batch=1))
    unknown = tiny_model(np.ones(3, np.float32), batch="batch")
    unknown.graph.output[0].type.tensor_type.shape.dim[0].Clear()  # dim 0 left unknown: shape inference may name it
    check_batch_kept(unknown, tiny_model(np.ones(3, np.float32), batch="batch"))
