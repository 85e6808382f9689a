"""Small ONNX graphs built by hand for the verifier's and the repair's tests, and the edit
people make to "batch" an official file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 13


def with_symbolic_batch(source: Path, target: Path) -> Path:
    """What people do to batch an official file: rename dim 0 of the input, nothing else."""
    model = onnx.load(str(source))
    dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    dim.Clear()
    dim.dim_param = "N"
    onnx.save(model, str(target))
    return target


def make_model(
    nodes: list, inputs: list, outputs: list, initializers: dict[str, np.ndarray] | None = None, opset: int = OPSET
) -> onnx.ModelProto:
    """A checked model from nodes and (name, dims) inputs/outputs of float32."""
    graph = helper.make_graph(
        nodes,
        "test",
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, dims) for name, dims in inputs],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, dims) for name, dims in outputs],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in (initializers or {}).items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
    onnx.checker.check_model(model)
    return model


def batch_mean_leak(path: Path) -> Path:
    """Conv → y + 0.01·mean over the batch: every shape right, every frame slightly contaminated."""
    weight = np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["input.1", "w"], ["y"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("ReduceMean", ["y"], ["batch_mean"], name="batch_mean", axes=[0], keepdims=1),
        helper.make_node("Mul", ["batch_mean", "leak"], ["small"], name="scale"),
        helper.make_node("Add", ["y", "small"], ["embedding"], name="leak_add"),
    ]
    model = make_model(
        nodes,
        [("input.1", ["batch", 3, 112, 112])],
        [("embedding", ["batch", 4, 112, 112])],
        {"w": weight, "leak": np.array(0.01, np.float32)},
    )
    onnx.save(model, str(path))
    return path


def folded_head(path: Path | None = None, batch: int | str = 1) -> onnx.ModelProto:
    """The official SCRFD head in small: Conv (4 channels) → Transpose(2,3,0,1) → Reshape(-1, 2)
    on a 4×4 input: one frame gives 32 rows of 2, a batch of N gives 32·N rows with the frames
    interleaved (row order y, x, frame, anchor)."""
    weight = np.random.default_rng(1).standard_normal((4, 3, 1, 1)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["input.1", "w"], ["y"], name="conv"),
        helper.make_node("Transpose", ["y"], ["t"], name="head_transpose", perm=[2, 3, 0, 1]),
        helper.make_node("Reshape", ["t", "shape"], ["rows"], name="head_reshape"),
    ]
    model = make_model(
        nodes,
        [("input.1", [batch, 3, 4, 4])],
        [("rows", [None, 2])],
        {"w": weight, "shape": np.array([-1, 2], np.int64)},
    )
    if path is not None:
        onnx.save(model, str(path))
    return model


def fixed_size_resize(path: Path) -> Path:
    """Constants a fixed-size TorchScript export writes: a Reshape to [1, C, H, W] (which fix
    repairs) and, for ``F.interpolate(size=…)``, a Resize with constant ``sizes`` [1, C, H, W]:
    with N frames that Resize squeezes the batch to one frame (the pattern the TorchScript exporter writes for interpolate(size=…))."""
    nodes = [
        helper.make_node("Reshape", ["input.1", "pinned"], ["x"], name="pin"),
        helper.make_node("Resize", ["x", "", "", "sizes"], ["embedding"], name="upsample", mode="nearest"),
    ]
    model = make_model(
        nodes,
        [("input.1", [1, 3, 4, 4])],
        [("embedding", [1, 3, 8, 8])],
        {"pinned": np.array([1, 3, 4, 4], np.int64), "sizes": np.array([1, 3, 8, 8], np.int64)},
    )
    onnx.save(model, str(path))
    return path


def concat_pinned_reshape(path: Path) -> Path:
    """``x.view(1, -1, 4)`` as the TorchScript exporter writes it at batch 1: the Reshape's shape
    is Concat(constant 1, a Shape-derived dim, constant 4)."""
    nodes = [
        helper.make_node("Shape", ["input.1"], ["dims"], name="dims"),
        helper.make_node("Slice", ["dims", "one", "two"], ["channels"], name="channels"),
        helper.make_node(
            "Concat", ["leading_one", "channels", "minus_one_four"], ["view_shape"], name="view_shape", axis=0
        ),
        helper.make_node("Reshape", ["input.1", "view_shape"], ["embedding"], name="view"),
    ]
    model = make_model(
        nodes,
        [("input.1", [1, 3, 4, 4])],
        [("embedding", [1, 3, 4, 4])],
        {
            "one": np.array([1], np.int64),
            "two": np.array([2], np.int64),
            "leading_one": np.array([1], np.int64),
            "minus_one_four": np.array([-1, 4], np.int64),
        },
    )
    onnx.save(model, str(path))
    return path


def expand_joined(path: Path) -> Path:
    """A learned constant expanded to [1, 2, 4, 4] (exported at batch 1) and concatenated with
    the frames along the channels: with N frames the Concat's shapes disagree."""
    nodes = [
        helper.make_node("Expand", ["prior", "prior_shape"], ["prior_map"], name="prior_expand"),
        helper.make_node("Concat", ["input.1", "prior_map"], ["embedding"], name="join", axis=1),
    ]
    model = make_model(
        nodes,
        [("input.1", [1, 3, 4, 4])],
        [("embedding", [1, 5, 4, 4])],
        {"prior": np.arange(2, dtype=np.float32).reshape(1, 2, 1, 1), "prior_shape": np.array([1, 2, 4, 4], np.int64)},
    )
    onnx.save(model, str(path))
    return path


def dynamic_fold(path: Path) -> Path:
    """A Reshape whose shape is computed at run time as [N·C, -1]: no constant to see, and the
    frames fold into the rows. Static checks cannot tell; only running frames can."""
    nodes = [
        helper.make_node("Shape", ["input.1"], ["dims"], name="dims"),
        helper.make_node("Slice", ["dims", "zero", "two"], ["n_c"], name="n_c"),
        helper.make_node("ReduceProd", ["n_c"], ["rows"], name="rows", keepdims=1),
        helper.make_node("Concat", ["rows", "minus_one"], ["fold_shape"], name="fold_shape", axis=0),
        helper.make_node("Reshape", ["input.1", "fold_shape"], ["embedding"], name="fold"),
    ]
    model = make_model(
        nodes,
        [("input.1", [1, 3, 4, 4])],
        [("embedding", [3, 16])],
        {"zero": np.array([0], np.int64), "two": np.array([2], np.int64), "minus_one": np.array([-1], np.int64)},
    )
    onnx.save(model, str(path))
    return path


def frame_picker(path: Path, op: str) -> Path:
    """A batch-1 graph that picks frame 0 by a constant on axis 0 (Slice, Gather or Split):
    with N frames it keeps one. Nothing surgery can make right."""
    if op == "Slice":
        node = helper.make_node("Slice", ["input.1", "zero", "one", "zero"], ["embedding"], name="pick")
    elif op == "Gather":
        node = helper.make_node("Gather", ["input.1", "zero"], ["embedding"], name="pick", axis=0)
    else:
        node = helper.make_node("Split", ["input.1", "one"], ["embedding"], name="pick", axis=0)
    model = make_model(
        [node],
        [("input.1", [1, 3, 4, 4])],
        [("embedding", [1, 3, 4, 4])],
        {"zero": np.array([0], np.int64), "one": np.array([1], np.int64)},
    )
    onnx.save(model, str(path))
    return path


def constant_joined(path: Path, op: str) -> Path:
    """A ConstantOfShape of [1, 2, 4, 4] (fixable: it becomes [N, 2, 4, 4]) or a Tile of a
    two-row constant to dim 0 = 2 (not fixable: it is not one frame) joined with the frames."""
    if op == "ConstantOfShape":
        maker = helper.make_node(
            "ConstantOfShape",
            ["made_shape"],
            ["made"],
            name="made",
            value=helper.make_tensor("v", TensorProto.FLOAT, [1], [0.5]),
        )
        initializers = {"made_shape": np.array([1, 2, 4, 4], np.int64)}
    else:
        maker = helper.make_node("Tile", ["pair", "repeats"], ["made"], name="made")
        initializers = {"pair": np.ones((2, 2, 1, 1), np.float32), "repeats": np.array([1, 1, 4, 4], np.int64)}
    nodes = [maker, helper.make_node("Concat", ["input.1", "made"], ["embedding"], name="join", axis=1)]
    batch = 1 if op == "ConstantOfShape" else 2
    model = make_model(nodes, [("input.1", [batch, 3, 4, 4])], [("embedding", [batch, 5, 4, 4])], initializers)
    onnx.save(model, str(path))
    return path


def float_conv_between_qdq(path: Path) -> Path:
    """What an INT8 recipe that keeps a layer FP32 writes: input → Q → DQ → Conv with float
    weights → Q → DQ. The conv's two output channels have weights 1.0 and 0.003: stored in 8 bits
    with one step for the whole tensor (1/255), the small one becomes 1/255, 31 % too large."""
    uint8 = np.uint8
    weight = np.array([1.0, 0.0, 0.0, 0.003], np.float32).reshape(2, 2, 1, 1)
    nodes = [
        helper.make_node("QuantizeLinear", ["input.1", "in_scale", "in_zero"], ["input_q"], name="input_q"),
        helper.make_node("DequantizeLinear", ["input_q", "in_scale", "in_zero"], ["input_dq"], name="input_dq"),
        helper.make_node("Conv", ["input_dq", "w", "b"], ["y"], name="kept_fp32_conv"),
        helper.make_node("QuantizeLinear", ["y", "out_scale", "out_zero"], ["y_q"], name="y_q"),
        helper.make_node("DequantizeLinear", ["y_q", "out_scale", "out_zero"], ["output"], name="y_dq"),
    ]
    model = make_model(
        nodes,
        [("input.1", ["batch", 2, 4, 4])],
        [("output", ["batch", 2, 4, 4])],
        {
            "in_scale": np.array(1.0, np.float32),
            "in_zero": np.array(0, uint8),
            "w": weight,
            "b": np.zeros(2, np.float32),
            "out_scale": np.array(1 / 255, np.float32),
            "out_zero": np.array(0, uint8),
        },
    )
    onnx.save(model, str(path))
    return path
