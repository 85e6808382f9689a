"""Static checks, before anything runs: where does the batch axis go through the graph?

The batch starts on axis 0 of the input. Walking the nodes in order, each tensor records
where its batch axis is, or which node folded it away. A Transpose that moves the batch, a
Reshape/Flatten whose constant shape fixes or folds it, a reduction over it, and any
normalisation computed on a tensor whose batch was folded are explained in words
(check 6); graph outputs that do not carry the batch on axis 0, batch axes fixed to a
number and symbols reused for different axes are layout findings (check 2).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import onnx

from facebatch.configs.spec import BATCH
from facebatch.core.onnx_graph import GraphView, attribute, inferred_shapes, io_dims, node_label

STATISTICS_OPS = {
    "InstanceNormalization",
    "GroupNormalization",
    "LayerNormalization",
    "Softmax",
    "LogSoftmax",
    "LpNormalization",
    "MeanVarianceNormalization",
}
REDUCE_OPS = {
    "ReduceMean",
    "ReduceSum",
    "ReduceMax",
    "ReduceMin",
    "ReduceProd",
    "ReduceL1",
    "ReduceL2",
    "ReduceLogSumExp",
    "ReduceSumSquare",
    "ArgMax",
    "ArgMin",
}
SELECT_OPS = {"Gather", "Slice", "Split", "Concat"}
SHAPE_MAKERS = {"Expand": 1, "ConstantOfShape": 0, "Tile": 1}  # op → the input holding its shape (or repeats)


def pinned_leading(view: GraphView, node: onnx.NodeProto) -> int | None:
    """The constant dim 0 an Expand, ConstantOfShape or Tile gives its output (Tile: the
    repeats), when its shape is a constant; None otherwise."""
    index = SHAPE_MAKERS.get(node.op_type)
    if index is None or len(node.input) <= index:
        return None
    shape = view.const(node.input[index])
    return int(shape.reshape(-1)[0]) if shape is not None and shape.size else None


def concat_leading_constant(view: GraphView, tensor: str) -> tuple[onnx.NodeProto, int] | None:
    """A shape built as Concat(constant, …) (how the TorchScript exporter writes ``x.view(1, -1, 4)``
    around Shape-derived dims): the Concat and its constant first value."""
    producer = view.producers.get(tensor)
    if producer is None or producer.op_type != "Concat" or not producer.input:
        return None
    first = view.const(producer.input[0])
    return (producer, int(first.reshape(-1)[0])) if first is not None and first.size else None


@dataclass(frozen=True)
class Finding:
    check: str  # "layout" (check 2) or "lint" (check 6)
    message: str
    node: str | None = None
    op_type: str | None = None

    def to_dict(self) -> dict:
        return {"check": self.check, "node": self.node, "op_type": self.op_type, "message": self.message}


@dataclass(frozen=True)
class BatchState:
    axis: int | None  # where the batch is; None once folded or mixed
    cause: str | None = None  # the node that folded/mixed it, in words


def relaxed_batch(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy whose graph inputs carry the symbolic batch on axis 0, with the outputs'
    and intermediate shapes cleared so that inference recomputes them (what people do
    when they "make the batch dynamic" by hand)."""
    model = copy.deepcopy(model)
    initializers = {i.name for i in model.graph.initializer}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        dims = value.type.tensor_type.shape.dim
        if dims:
            dims[0].Clear()
            dims[0].dim_param = BATCH
    for value in model.graph.output:
        value.type.tensor_type.ClearField("shape")
    del model.graph.value_info[:]
    return model


def io_findings(model: onnx.ModelProto) -> list[Finding]:
    """Check 2, static: fixed batch axes and one symbol used for several meanings."""
    findings = []
    dims = io_dims(model)
    output_names = {o.name for o in model.graph.output}
    for name, shape in dims.items():
        kind = "output" if name in output_names else "input"
        if shape and isinstance(shape[0], int):
            findings.append(Finding("layout", f"{kind} {name} has its batch axis fixed to {shape[0]} ({shape})"))
    uses: dict[str, set[int]] = {}
    for shape in dims.values():
        for axis, dim in enumerate(shape):
            if isinstance(dim, str):
                uses.setdefault(dim, set()).add(axis)
    for symbol, axes in sorted(uses.items()):
        if 0 in axes and len(axes) > 1:
            findings.append(
                Finding(
                    "layout",
                    f"symbol {symbol!r} names the batch and also axes {sorted(axes - {0})}: one symbol "
                    "means one value in the whole graph, so runtimes may tie the batch to the image size",
                )
            )
    return findings


def _shape_text(values: np.ndarray) -> str:
    return "[" + ", ".join(str(int(v)) for v in values.reshape(-1)) + "]"


def _reshape_keeps_batch(shape: np.ndarray, in_shape: list | None) -> bool:
    if shape.size == 0:
        return False
    if shape[0] == 0:
        return True
    if shape[0] != -1 or in_shape is None or len(in_shape) < 1:
        return False
    rest_in = in_shape[1:]
    if not all(isinstance(d, int) and d > 0 for d in rest_in):
        return False
    rest = [in_shape[i + 1] if v == 0 and i + 1 < len(in_shape) else int(v) for i, v in enumerate(shape[1:])]
    return all(isinstance(v, int) and v > 0 for v in rest) and math.prod(rest) == math.prod(rest_in)


def _axes(view: GraphView, node: onnx.NodeProto) -> list[int] | None:
    axes = attribute(node, "axes", None)
    if axes is None and len(node.input) > 1 and node.input[1]:
        const = view.const(node.input[1])
        axes = None if const is None else [int(a) for a in const.reshape(-1)]
    return None if axes is None else list(axes)


def pinned_sizes(view: GraphView, node: onnx.NodeProto) -> np.ndarray | None:
    """A Resize's constant ``sizes`` with a fixed dim 0."""
    sizes = view.const(node.input[3]) if len(node.input) > 3 else None
    return sizes if sizes is not None and sizes.size and int(sizes[0]) > 0 else None


def pinned_concat(view: GraphView, node: onnx.NodeProto) -> tuple[onnx.NodeProto, int] | None:
    """A Reshape whose shape is Concat(constant ≥ 1, …)."""
    if view.const(node.input[1]) is not None:
        return None
    built = concat_leading_constant(view, node.input[1])
    return built if built is not None and built[1] > 0 else None


def lint_graph(model: onnx.ModelProto) -> list[Finding]:
    """Check 6 (and output placement for check 2): follow the batch axis node by node."""
    relaxed = relaxed_batch(model)
    shapes = inferred_shapes(relaxed)
    view = GraphView(relaxed)
    initializers = {i.name for i in relaxed.graph.initializer}
    states: dict[str, BatchState] = {v.name: BatchState(0) for v in relaxed.graph.input if v.name not in initializers}
    findings: list[Finding] = []
    producer_of: dict[str, onnx.NodeProto] = {}

    def flag(node: onnx.NodeProto, message: str) -> str:
        findings.append(Finding("lint", message, node_label(node), node.op_type))
        return f"{node.op_type} {node_label(node)}"

    for node in view.nodes:
        for out in node.output:
            producer_of[out] = node
        carried = [states[i] for i in node.input if i in states]
        if not carried or node.op_type in ("Shape", "Size"):
            continue
        state = carried[0]
        new = state
        # constants that pin dim 0 are flagged even after an earlier fold: fix must repair each of them
        if node.op_type == "Resize" and (sizes := pinned_sizes(view, node)) is not None:
            message = (
                f"Resize to constant sizes {_shape_text(sizes)} fixes dim 0 to {int(sizes[0])}: with a batch of N it "
                "squeezes the frames into one (F.interpolate(size=…) in a fixed-size export)"
            )
            new = BatchState(None, flag(node, message))
        elif node.op_type == "Reshape" and (built := pinned_concat(view, node)) is not None:
            concat, first = built
            message = (
                f"Reshape's shape is Concat {node_label(concat)} of a constant {first} and other dims: dim 0 is pinned to "
                f"{first} whatever the batch (x.view({first}, …) exported at batch 1)"
            )
            new = BatchState(None, flag(node, message))
        elif state.axis is None:
            if node.op_type in STATISTICS_OPS:
                flag(
                    node,
                    f"{node.op_type} computes statistics over a tensor whose batch was folded by {state.cause}: "
                    "the normalisation mixes frames (a norm exported at batch 1, e.g. GroupNorm as Reshape(1, G, -1))",
                )
        elif node.op_type == "Transpose":
            perm = list(attribute(node, "perm", list(range(len(shapes.get(node.input[0], [])) or 0))[::-1]))
            axis = perm.index(state.axis) if state.axis in perm else None
            if axis != state.axis and state.axis == 0:
                flag(node, f"Transpose(perm={perm}) moves the batch from axis 0 to axis {axis}")
            new = BatchState(axis, state.cause)
        elif node.op_type == "Reshape":
            target = view.const(node.input[1])
            if target is not None:
                in_shape = shapes.get(node.input[0])
                if state.axis == 0 and _reshape_keeps_batch(target, in_shape):
                    new = BatchState(0)
                else:
                    text = _shape_text(target)
                    before = producer_of.get(node.input[0])
                    if state.axis != 0 and before is not None and before.op_type == "Transpose":
                        perm = list(attribute(before, "perm", []))
                        message = f"Reshape to {text} after Transpose(perm={perm}) folds the batch into the rows"
                    elif target.size and target[0] > 0:
                        message = (
                            f"Reshape to constant {text} fixes dim 0 to {int(target[0])}: with a batch of N "
                            "the frames are folded into the other axes"
                        )
                    else:
                        message = f"Reshape to {text} folds the batch (axis {state.axis}) into other axes"
                    new = BatchState(None, flag(node, message))
        elif node.op_type == "Flatten":
            axis = int(attribute(node, "axis", 1))
            if not (state.axis == 0 and axis >= 1):
                new = BatchState(None, flag(node, f"Flatten(axis={axis}) folds the batch into the rows"))
        elif node.op_type == "Squeeze":
            axes = _axes(view, node)
            if axes is None or state.axis in [a % max(1, len(shapes.get(node.input[0], [0]))) for a in axes]:
                new = BatchState(None, flag(node, "Squeeze removes the batch axis (it was 1 at export)"))
        elif node.op_type in REDUCE_OPS:
            axes = _axes(view, node)
            rank = len(shapes.get(node.input[0], [])) or 1
            if axes is None or state.axis in [a % rank for a in axes]:
                new = BatchState(None, flag(node, f"{node.op_type} over axis {state.axis} (the batch) combines frames"))
        elif node.op_type in SELECT_OPS:
            axis = int(attribute(node, "axis", 0))
            if node.op_type == "Slice":
                axes = _axes(view, node) if len(node.input) > 3 and node.input[3] else None
                hits = axes is None or state.axis in axes
            else:
                hits = axis == state.axis
            if hits and node.op_type != "Concat":
                new = BatchState(None, flag(node, f"{node.op_type} on the batch axis picks fixed frames"))
            if (
                node.op_type == "Concat"
                and state.axis == 0
                and axis % max(1, len(shapes.get(node.output[0], [0]))) != 0
            ):
                for tensor in node.input:
                    maker = view.producers.get(tensor)
                    if tensor in states or maker is None or (leading := pinned_leading(view, maker)) is None:
                        continue
                    what = "repeats" if maker.op_type == "Tile" else "shape"
                    flag(
                        node,
                        f"Concat joins the frames with {maker.op_type} {node_label(maker)}'s output, whose dim 0 is fixed by "
                        f"its constant {what} (dim 0: {leading}): with a batch of N the shapes disagree",
                    )
        elif node.op_type == "LayerNormalization" and int(attribute(node, "axis", -1)) == 0:  # normalises every axis
            flag(node, "LayerNormalization from axis 0 computes statistics across frames")
        for out in node.output:
            states[out] = new

    for value in relaxed.graph.output:
        state = states.get(value.name)
        if state is None:
            findings.append(Finding("layout", f"output {value.name} does not depend on the input batch"))
        elif state.axis is None:
            findings.append(Finding("layout", f"output {value.name} has lost the batch axis ({state.cause} folded it)"))
        elif state.axis != 0:
            findings.append(Finding("layout", f"output {value.name} carries the batch on axis {state.axis}, not 0"))
    return findings
