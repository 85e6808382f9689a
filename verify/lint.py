"""Static checks, before anything runs: where does the batch axis go through the graph?

The batch starts on axis 0 of the input. Walking the nodes in order, each tensor records
where its batch axis is, or which node folded it away. A Transpose that moves the batch, a
Reshape/Flatten whose constant shape fixes or folds it, a reduction over it, and any
normalisation computed on a tensor whose batch was folded are explained in words
(check 6); graph outputs that do not carry the batch on axis 0 are layout findings (check 2;
``layout.io_findings`` has its static half: batch axes fixed to a number, symbols reused).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np
import onnx

from facebatch.configs.spec import BATCH
from facebatch.core.onnx_graph import GraphView, attribute, inferred_shapes, node_label

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


@dataclass
class _Walk:
    """What the walk through the graph knows so far: each tensor's batch state, who made each
    tensor, the inferred shapes, and the findings."""

    view: GraphView
    shapes: dict
    states: dict[str, BatchState]
    findings: list[Finding] = field(default_factory=list)
    producer_of: dict[str, onnx.NodeProto] = field(default_factory=dict)

    def flag(self, node: onnx.NodeProto, message: str) -> str:
        """A check-6 finding at ``node``; returns the node in words, the cause a folded state records."""
        self.findings.append(Finding("lint", message, node_label(node), node.op_type))
        return f"{node.op_type} {node_label(node)}"

    def rank(self, tensor: str, default: list) -> int:
        return len(self.shapes.get(tensor, default))


def _pinned(walk: _Walk, node: onnx.NodeProto) -> BatchState | None:
    """Constants that pin dim 0, flagged even after an earlier fold (fix must repair each of them)."""
    if node.op_type == "Resize" and (sizes := pinned_sizes(walk.view, node)) is not None:
        message = (
            f"Resize to constant sizes {_shape_text(sizes)} fixes dim 0 to {int(sizes[0])}: with a batch of N it "
            "squeezes the frames into one (F.interpolate(size=…) in a fixed-size export)"
        )
        return BatchState(None, walk.flag(node, message))
    if node.op_type == "Reshape" and (built := pinned_concat(walk.view, node)) is not None:
        concat, first = built
        message = (
            f"Reshape's shape is Concat {node_label(concat)} of a constant {first} and other dims: dim 0 is pinned to "
            f"{first} whatever the batch (x.view({first}, …) exported at batch 1)"
        )
        return BatchState(None, walk.flag(node, message))
    return None


def _statistics_after_fold(walk: _Walk, node: onnx.NodeProto, state: BatchState) -> BatchState:
    if node.op_type in STATISTICS_OPS:
        walk.flag(
            node,
            f"{node.op_type} computes statistics over a tensor whose batch was folded by {state.cause}: "
            "the normalisation mixes frames (a norm exported at batch 1, e.g. GroupNorm as Reshape(1, G, -1))",
        )
    return state


def _transpose(walk: _Walk, node: onnx.NodeProto, state: BatchState) -> BatchState:
    perm = list(attribute(node, "perm", list(range(walk.rank(node.input[0], []) or 0))[::-1]))
    axis = perm.index(state.axis) if state.axis in perm else None
    if axis != state.axis and state.axis == 0:
        walk.flag(node, f"Transpose(perm={perm}) moves the batch from axis 0 to axis {axis}")
    return BatchState(axis, state.cause)


def _reshape(walk: _Walk, node: onnx.NodeProto, state: BatchState) -> BatchState:
    target = walk.view.const(node.input[1])
    if target is None:
        return state
    if state.axis == 0 and _reshape_keeps_batch(target, walk.shapes.get(node.input[0])):
        return BatchState(0)
    text = _shape_text(target)
    before = walk.producer_of.get(node.input[0])
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
    return BatchState(None, walk.flag(node, message))


def _flatten(walk: _Walk, node: onnx.NodeProto, state: BatchState) -> BatchState:
    axis = int(attribute(node, "axis", 1))
    if state.axis == 0 and axis >= 1:
        return state
    return BatchState(None, walk.flag(node, f"Flatten(axis={axis}) folds the batch into the rows"))


def _squeeze(walk: _Walk, node: onnx.NodeProto, state: BatchState) -> BatchState:
    axes = _axes(walk.view, node)
    if axes is None or state.axis in [a % max(1, walk.rank(node.input[0], [0])) for a in axes]:
        return BatchState(None, walk.flag(node, "Squeeze removes the batch axis (it was 1 at export)"))
    return state


def _reduce(walk: _Walk, node: onnx.NodeProto, state: BatchState) -> BatchState:
    axes = _axes(walk.view, node)
    rank = walk.rank(node.input[0], []) or 1
    if axes is None or state.axis in [a % rank for a in axes]:
        return BatchState(None, walk.flag(node, f"{node.op_type} over axis {state.axis} (the batch) combines frames"))
    return state


def _select(walk: _Walk, node: onnx.NodeProto, state: BatchState) -> BatchState:
    axis = int(attribute(node, "axis", 0))
    if node.op_type == "Slice":
        axes = _axes(walk.view, node) if len(node.input) > 3 and node.input[3] else None
        hits = axes is None or state.axis in axes
    else:
        hits = axis == state.axis
    if node.op_type != "Concat":
        return (
            BatchState(None, walk.flag(node, f"{node.op_type} on the batch axis picks fixed frames")) if hits else state
        )
    if state.axis == 0 and axis % max(1, walk.rank(node.output[0], [0])) != 0:
        _concat_with_pinned_shapes(walk, node)
    return state


def _concat_with_pinned_shapes(walk: _Walk, node: onnx.NodeProto) -> None:
    """A Concat off the batch axis that joins the frames with a tensor whose dim 0 a constant fixes."""
    for tensor in node.input:
        maker = walk.view.producers.get(tensor)
        if tensor in walk.states or maker is None or (leading := pinned_leading(walk.view, maker)) is None:
            continue
        what = "repeats" if maker.op_type == "Tile" else "shape"
        walk.flag(
            node,
            f"Concat joins the frames with {maker.op_type} {node_label(maker)}'s output, whose dim 0 is fixed by "
            f"its constant {what} (dim 0: {leading}): with a batch of N the shapes disagree",
        )


def _layer_norm(walk: _Walk, node: onnx.NodeProto, state: BatchState) -> BatchState:
    if int(attribute(node, "axis", -1)) == 0:  # normalises every axis
        walk.flag(node, "LayerNormalization from axis 0 computes statistics across frames")
    return state


# op type → how it moves the batch (for a tensor that still carries one)
RULES = {
    "Transpose": _transpose,
    "Reshape": _reshape,
    "Flatten": _flatten,
    "Squeeze": _squeeze,
    **{op: _reduce for op in REDUCE_OPS},
    **{op: _select for op in SELECT_OPS},
    "LayerNormalization": _layer_norm,
}


def _next_state(walk: _Walk, node: onnx.NodeProto, state: BatchState) -> BatchState:
    """The batch state of ``node``'s outputs, given its first batch-carrying input's."""
    pinned = _pinned(walk, node)
    if pinned is not None:
        return pinned
    if state.axis is None:
        return _statistics_after_fold(walk, node, state)
    rule = RULES.get(node.op_type)
    return state if rule is None else rule(walk, node, state)


def _output_findings(model: onnx.ModelProto, states: dict[str, BatchState]) -> list[Finding]:
    """Check 2, from the walk: every output carries the batch on axis 0."""
    findings = []
    for value in model.graph.output:
        state = states.get(value.name)
        if state is None:
            findings.append(Finding("layout", f"output {value.name} does not depend on the input batch"))
        elif state.axis is None:
            findings.append(Finding("layout", f"output {value.name} has lost the batch axis ({state.cause} folded it)"))
        elif state.axis != 0:
            findings.append(Finding("layout", f"output {value.name} carries the batch on axis {state.axis}, not 0"))
    return findings


def lint_graph(model: onnx.ModelProto) -> list[Finding]:
    """Check 6 (and output placement for check 2): follow the batch axis node by node."""
    relaxed = relaxed_batch(model)
    initializers = {i.name for i in relaxed.graph.initializer}
    states = {v.name: BatchState(0) for v in relaxed.graph.input if v.name not in initializers}
    walk = _Walk(GraphView(relaxed), inferred_shapes(relaxed), states)
    for node in walk.view.nodes:
        for out in node.output:
            walk.producer_of[out] = node
        carried = [walk.states[i] for i in node.input if i in walk.states]
        if not carried or node.op_type in ("Shape", "Size"):
            continue
        new = _next_state(walk, node, carried[0])
        for out in node.output:
            walk.states[out] = new
    return walk.findings + _output_findings(relaxed, walk.states)
