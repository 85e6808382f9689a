"""Graph surgery for ``fix``: a batch-1 graph made batch-keeping in memory; nothing is run or written here.

* the official SCRFD head, ``Transpose(perm=[2,3,0,1]) → Reshape([-1, K])``,
  becomes ``Transpose(perm=[0,2,3,1]) → Reshape([0, -1, K])``: rows stay in (y, x, anchor)
  order per frame, and the batch stays on axis 0;
* a Reshape whose constant shape fixes dim 0 to the exported batch of 1 (``[1, -1]`` before a
  recognition head, ``[1, G, -1]`` of a GroupNorm exported at batch 1) copies dim 0 instead;
* Resize sizes, Concat-built Reshape shapes and Expand/ConstantOfShape/Tile shapes joined with the
  frames take dim 0 from the data at run time;
* the input's batch axis becomes the symbol ``batch`` (and a symbolic height/width that
  shared one name with it get their own), outputs are re-inferred with ``batch`` on axis 0;
* SCRFD outputs are renamed to the ``score_8 … kps_32`` convention.

What surgery cannot repair stays in ``RepairPlan.remaining`` (lint's findings, by node); the proof
and the writing are ``facebatch.workflows.fix``'s.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from facebatch.configs.family import scrfd_landmarks
from facebatch.configs.scrfd import OUTPUT_CHANNELS, released_head_layout
from facebatch.configs.spec import BATCH, HEIGHT, WIDTH
from facebatch.core.onnx_graph import GraphView, attribute, inferred_shapes, io_dims, node_label
from facebatch.verify.lint import (
    SHAPE_MAKERS,
    Finding,
    lint_graph,
    pinned_concat,
    pinned_leading,
    pinned_sizes,
    relaxed_batch,
)

FOLDING_PERM = [2, 3, 0, 1]
KEEPING_PERM = [0, 2, 3, 1]
MAX_PASSES = 8


@dataclass(frozen=True)
class Repair:
    """One surgical change: the node, what it had, what it has now, and why."""

    node: str
    before: str
    after: str
    why: str

    def __str__(self) -> str:
        return f"{self.node} {self.before} → {self.after}: {self.why}"

    def to_dict(self) -> dict[str, str]:
        return {"node": self.node, "before": self.before, "after": self.after, "why": self.why}


def _set_const(model: onnx.ModelProto, tensor: str, value: np.ndarray, node: onnx.NodeProto) -> None:
    """Give ``node`` its own constant (the original may be shared with nodes we do not touch)."""
    name = f"{tensor}__facebatch_fixed_{node_label(node)}"
    model.graph.initializer.append(numpy_helper.from_array(value.astype(np.int64), name))
    node.input[1] = name


class _Inserter:
    """New nodes go right before the node that needs them, so the graph stays in topological order."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        self.count = 0

    def before(self, anchor: onnx.NodeProto, nodes: list[onnx.NodeProto]) -> None:
        graph = self.model.graph.node
        index = next(
            i
            for i, n in enumerate(graph)
            if n is anchor or (n.name == anchor.name and list(n.output) == list(anchor.output))
        )
        for offset, node in enumerate(nodes):
            graph.insert(index + offset, node)

    def const(self, value: np.ndarray, hint: str) -> str:
        self.count += 1
        name = f"facebatch_fix_{hint}_{self.count}"
        self.model.graph.initializer.append(numpy_helper.from_array(np.asarray(value, np.int64), name))
        return name

    def batch_then(self, anchor: onnx.NodeProto, batch_of: str, rest: np.ndarray, hint: str) -> str:
        """A 1-D int64 tensor [N, *rest]: N read at run time from ``batch_of``'s Shape."""
        shape, first, joined = (f"facebatch_fix_{hint}_{k}_{self.count + 1}" for k in ("shape", "batch", "dims"))
        starts, ends, tail = self.const([0], hint), self.const([1], hint), self.const(rest, hint)
        self.before(
            anchor,
            [
                onnx.helper.make_node("Shape", [batch_of], [shape], name=f"{shape}_node"),
                onnx.helper.make_node("Slice", [shape, starts, ends], [first], name=f"{first}_node"),
                onnx.helper.make_node("Concat", [first, tail], [joined], name=f"{joined}_node", axis=0),
            ],
        )
        return joined


def _fix_pinned_constants(model: onnx.ModelProto, view: GraphView, shapes: dict[str, list]) -> list[Repair]:
    """Resize sizes, Concat-built reshapes and Expand/ConstantOfShape/Tile shapes whose dim 0
    is the exported batch of 1 take the batch from the data at run time instead."""
    insert = _Inserter(model)
    carries = {name for name, dims in shapes.items() if dims and dims[0] == BATCH}
    changes = []
    for node in view.nodes:
        if node.op_type == "Resize" and node.input[0] in carries:
            sizes = pinned_sizes(view, node)
            if sizes is not None and int(sizes[0]) == 1:
                node.input[3] = insert.batch_then(node, node.input[0], sizes[1:], "resize_sizes")
                changes.append(
                    Repair(
                        node_label(node),
                        f"sizes {sizes.tolist()}",
                        f"[N, {', '.join(map(str, sizes[1:].tolist()))}]",
                        "N from the input's shape at run time: the Resize keeps every frame",
                    )
                )
        elif node.op_type == "Reshape" and node.input[0] in carries:
            built = pinned_concat(view, node)
            if built is not None and built[1] == 1:
                concat, _ = built
                old = concat.input[0]
                concat.input[0] = insert.const([0], "reshape_copies_batch")  # Reshape: 0 copies the input's dim
                changes.append(
                    Repair(
                        node_label(concat),
                        f"(the shape of {node_label(node)}) starts with the constant 1 ({old})",
                        "starts with 0",
                        "the Reshape copies dim 0, the batch",
                    )
                )
        elif node.op_type == "Concat":
            joined = [t for t in node.input if t in carries]
            if not joined:
                continue
            for tensor in node.input:
                maker = view.producers.get(tensor)
                if tensor in carries or maker is None or pinned_leading(view, maker) != 1:
                    continue
                index = SHAPE_MAKERS[maker.op_type]
                shape = view.const(maker.input[index])
                if maker.op_type == "Tile" and (shapes.get(maker.input[0]) or [None])[0] != 1:
                    continue  # tiling a tensor that is not one frame: left for lint to refuse by name
                maker.input[index] = insert.batch_then(
                    maker, joined[0], shape.reshape(-1)[1:], f"{maker.op_type.lower()}_shape"
                )
                changes.append(
                    Repair(
                        f"{maker.op_type} {node_label(maker)}",
                        f"{'repeats' if maker.op_type == 'Tile' else 'shape'} {shape.tolist()}",
                        "[N, …]",
                        f"N from {joined[0]} at run time: it spans the batch it is joined with in {node_label(node)}",
                    )
                )
    return changes


def _fix_nodes(model: onnx.ModelProto) -> list[Repair]:
    """Pass after pass until nothing changes: a repair upstream lets the batch reach the next
    pinned constant (a Reshape to [1, C, H, W] before a Resize to [1, C, 2H, 2W])."""
    changes: list[Repair] = []
    for _ in range(MAX_PASSES):
        new = _fix_reshapes(model)
        new += _fix_pinned_constants(model, GraphView(model), inferred_shapes(model))
        if not new:
            break
        changes += new
    return changes


def _fix_reshapes(model: onnx.ModelProto) -> list[Repair]:
    view = GraphView(model)
    shapes = inferred_shapes(model)
    producers = {out: n for n in view.nodes for out in n.output}
    changes = []
    for node in view.nodes:
        if node.op_type != "Reshape":
            continue
        target = view.const(node.input[1])
        if target is None or target.ndim != 1 or target.size == 0:
            continue
        before = producers.get(node.input[0])
        if (
            before is not None
            and before.op_type == "Transpose"
            and list(attribute(before, "perm", [])) == FOLDING_PERM
            and target[0] == -1
        ):
            for attr in before.attribute:
                if attr.name == "perm":
                    attr.ints[:] = KEEPING_PERM
            _set_const(model, node.input[1], np.concatenate([[0, -1], target[1:]]), node)
            changes.append(
                Repair(node_label(before), f"perm {FOLDING_PERM}", f"{KEEPING_PERM}", "the head's rows stay per frame")
            )
            changes.append(
                Repair(
                    node_label(node),
                    f"shape {target.tolist()}",
                    f"{[0, -1, *target[1:].tolist()]}",
                    "the head keeps the batch on axis 0",
                )
            )
        elif target[0] == 1 and (shapes.get(node.input[0]) or [None])[0] == BATCH:
            fixed = target.copy()
            fixed[0] = 0
            _set_const(model, node.input[1], fixed, node)
            changes.append(
                Repair(node_label(node), f"shape {target.tolist()}", f"{fixed.tolist()}", "dim 0 copies the batch")
            )
    return changes


def _declared_batch(original: onnx.ModelProto, repaired: onnx.ModelProto, renames: dict[str, str]) -> list[Repair]:
    """The declared batch axis made symbolic (``relaxed_batch``, ``_declare_outputs``): one repair for the
    inputs and one for the outputs, grouped by what dim 0 was, so that a file whose only fault is a batch
    pinned to 1 in its declarations still says what changed."""
    outputs = {o.name for o in original.graph.output}
    after = io_dims(repaired)
    groups: dict[tuple[str, str], list[str]] = {}
    for name, dims in io_dims(original).items():
        if not dims or dims[0] == BATCH:
            continue
        kind = "output" if name in outputs else "input"
        if len(after.get(renames.get(name, name), dims)) > len(dims):
            before = "the batch folded into the rows"  # the official head's [rows, C] became [batch, rows, C]
        elif isinstance(dims[0], int):
            before = f"dim 0 fixed to {dims[0]}"
        else:
            before = "dim 0 unnamed" if dims[0] is None else f"dim 0 '{dims[0]}'"
        groups.setdefault((kind, before), []).append(name)
    why = {"input": "it takes any number of frames", "output": "one result per frame on axis 0"}
    return [
        Repair(
            f"{kind}{'s' if len(names) > 1 else ''} {', '.join(names)}",
            before,
            f"symbolic dim 0 '{BATCH}'",
            why[kind],
        )
        for (kind, before), names in sorted(groups.items())
    ]


def _scrfd_names(model: onnx.ModelProto, shapes: dict[str, list]) -> dict[str, str]:
    """Official order: scores s8/16/32, bboxes, then kps; checked by channels."""
    use_kps = scrfd_landmarks(model)
    if use_kps is None:
        return {}
    outputs = [o.name for o in model.graph.output]
    names = released_head_layout(use_kps).output_names()
    for old, new in zip(outputs, names, strict=False):
        kind = new.split("_")[0]
        if (shapes.get(old) or [None])[-1] != OUTPUT_CHANNELS[kind]:
            return {}  # not in the official order: keep the names
    return {old: new for old, new in zip(outputs, names, strict=False) if old != new}


def _rename(model: onnx.ModelProto, renames: dict[str, str]) -> None:
    for node in model.graph.node:
        node.output[:] = [renames.get(o, o) for o in node.output]
        node.input[:] = [renames.get(i, i) for i in node.input]
    for value in model.graph.output:
        value.name = renames.get(value.name, value.name)


def _declare_outputs(model: onnx.ModelProto, declared: dict[str, list]) -> None:
    """Re-infer output shapes; dim 0 is ``batch``; a dim inference cannot tell keeps what the
    original declared (the proof checks it), else gets its own name. ``declared``: each
    output's dims in the original graph (by its new name)."""
    shapes = inferred_shapes(model)
    for value in model.graph.output:
        # shape inference cannot follow a shape computed at run time (Shape → … → Reshape); a type without
        # a shape is not valid ONNX for a graph output, so the declared rank and fixed dims stand in
        original = declared.get(value.name, [])
        inferred = shapes.get(value.name) or [None] * len(original)
        dims = [
            d if isinstance(d, int) and d > 0 else (original[a] if a < len(original) else None)
            for a, d in enumerate(inferred)
        ]
        value.type.tensor_type.ClearField("shape")
        shape = value.type.tensor_type.shape
        for axis, dim in enumerate(dims):
            entry = shape.dim.add()
            if axis == 0:
                entry.dim_param = BATCH
            elif isinstance(dim, int) and dim > 0:
                entry.dim_value = dim
            elif axis == 1 and value.name.split("_")[0] in OUTPUT_CHANNELS:
                entry.dim_param = f"rows_{value.name.split('_')[-1]}"  # score_8 and bbox_8 share their row count
            else:
                entry.dim_param = f"{value.name}_dim{axis}"


def _name_spatial_axes(model: onnx.ModelProto) -> None:
    initializers = {i.name for i in model.graph.initializer}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        for axis, dim in enumerate(value.type.tensor_type.shape.dim):
            if axis >= 2 and not dim.HasField("dim_value"):
                dim.dim_param = (HEIGHT, WIDTH)[axis - 2] if axis < 4 else f"axis{axis}"


@dataclass
class RepairPlan:
    """The repaired graph in memory, what changed, and what surgery could not repair."""

    model: onnx.ModelProto
    repairs: list[Repair]
    renamed: dict[str, str]
    remaining: list[Finding]
    already_batched: bool = False  # every input and output already has a symbolic batch, and lint finds nothing

    @property
    def changes(self) -> list[str]:
        return [str(r) for r in self.repairs]

    @property
    def repairs_everything(self) -> bool:
        return bool(self.repairs or self.renamed) and not self.remaining


def plan_repair(original: onnx.ModelProto) -> RepairPlan:
    """Graph surgery on a copy; nothing is run or written."""
    model = relaxed_batch(original)
    _name_spatial_axes(model)
    changes = _fix_nodes(model)
    renames = _scrfd_names(original, inferred_shapes(relaxed_batch(original)))
    _rename(model, renames)
    dims = io_dims(original)  # inputs and outputs
    _declare_outputs(model, {renames.get(o.name, o.name): dims.get(o.name, []) for o in original.graph.output})
    remaining = [f for f in lint_graph(model) if f.check == "lint"]
    model.producer_name = "facebatch fix"
    symbolic = all(shape and isinstance(shape[0], str) for shape in dims.values())
    already = symbolic and not changes and not renames and not lint_graph(original)
    declared = [] if already else _declared_batch(original, model, renames)
    return RepairPlan(model, changes + declared, renames, remaining, already)
