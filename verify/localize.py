"""Check 5: when frames mix, name the first node that does it.

Every float tensor of the graph is exposed as an output; a few distinct frames run
together and one at a time, and the tensors are compared node by node in graph order:

* batch on axis 0 both ways → compare per-frame slices;
* same number of values but another arrangement (the batch moved or folded into rows) →
  compare the *sorted* values: equal means the frames were only rearranged (a layout
  fold), different means values were combined (frames mixed);
* anything else (e.g. the batch reduced away) → frames mixed.

The first node that mixes values is the contamination; the first that only folds is the
layout culprit. Hints come from the static lint for the same node when it has one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import onnx

from facebatch.core.errors import EngineError
from facebatch.core.onnx_graph import GraphView, node_label
from facebatch.engines.runners.base import IntermediateTensors, Runner
from facebatch.verify.independence import INDEPENDENCE_ATOL
from facebatch.verify.lint import Finding

LOCALISATION_FRAMES = 3
NON_FINITE = "non-finite"

GENERIC_HINTS = {
    "InstanceNormalization": "normalisation statistics are computed across frames",
    "ReduceMean": "a mean over the batch axis combines frames",
    "Transpose": "the batch axis is moved off axis 0",
    "Reshape": "the reshape folds the batch into other axes",
    "Flatten": "the flatten folds the batch into the rows",
}


@dataclass(frozen=True)
class Culprit:
    node: str
    op_type: str
    kind: (
        str  # "mixes" (values combined across frames) | "folds" (frames rearranged off axis 0) | "non-finite" (NaN/Inf)
    )
    detail: str
    hint: str

    def describe(self) -> str:
        verb = {"mixes": "mixes frames", "folds": "folds the batch", NON_FINITE: "produces NaN or Inf"}[self.kind]
        return f"{self.op_type} {self.node} {verb}: {self.hint} ({self.detail})"

    def to_dict(self) -> dict:
        return asdict(self)


def _compare(batched: np.ndarray, alone: list[np.ndarray], atol: float) -> tuple[str, str] | None:
    """None if the tensor is per-frame clean; else (kind, detail)."""
    n = len(alone)
    if all(a.shape == batched.shape for a in alone) and all(np.array_equal(a, batched) for a in alone):
        return None  # does not depend on the frames (a computed constant)
    if (
        batched.ndim
        and batched.shape[0] == n
        and all(a.ndim and a.shape[0] == 1 and a.shape[1:] == batched.shape[1:] for a in alone)
    ):
        diff = max(
            float(np.max(np.abs(batched[i : i + 1].astype(np.float64) - a))) if a.size else 0.0
            for i, a in enumerate(alone)
        )
        return None if diff < atol else ("mixes", f"per-frame slices differ by {diff:.3g}")
    together = np.sort(np.concatenate([a.reshape(-1) for a in alone]).astype(np.float64))
    if batched.size == together.size:
        diff = (
            float(np.max(np.abs(np.sort(batched.reshape(-1).astype(np.float64)) - together))) if together.size else 0.0
        )
        if diff < atol:
            return (
                "folds",
                f"shape {list(batched.shape)} for a batch of {n}: the frames' values are all there, rearranged",
            )
        return "mixes", f"shape {list(batched.shape)}; values differ from the frames' own by up to {diff:.3g}"
    return (
        "mixes",
        f"shape {list(batched.shape)} for a batch of {n} vs {list(alone[0].shape)} per frame: the batch was reduced away",
    )


def _non_finite(batched: np.ndarray, alone: list[np.ndarray]) -> str | None:
    """How many values are NaN or Inf, run batched and alone; None when all are finite."""
    if not np.issubdtype(batched.dtype, np.floating):
        return None
    counts = [int(np.size(t) - np.count_nonzero(np.isfinite(t))) for t in (batched, *alone)]
    if not any(counts):
        return None
    return f"{counts[0]} of {batched.size} values non-finite in the batch, {sum(counts[1:])} in the frames run alone"


def localise(
    runner: Runner,
    model: onnx.ModelProto,
    frames: np.ndarray,
    lint: list[Finding],
    atol: float = INDEPENDENCE_ATOL,
) -> tuple[Culprit | None, Culprit | None]:
    """(first node that mixes values, first node that folds the batch); either may be None.
    A node that produces NaN or Inf before any mixing is named instead, as what it is: the
    frames then differ because non-finite values never compare equal, not because they mix.

    ``runner`` is active, runs ``model`` and has the ``IntermediateTensors`` capability."""
    if not isinstance(runner, IntermediateTensors):
        raise EngineError(
            f"{type(runner).__name__} cannot expose intermediate tensors; localisation needs a runner that can"
        )
    frames = frames[:LOCALISATION_FRAMES]
    lint_by_node = {f.node: f.message for f in lint if f.node}
    view = GraphView(model)
    (source,) = runner.inputs
    batched = runner.infer_intermediates({source.name: frames})
    alone = [runner.infer_intermediates({source.name: frames[i : i + 1]}) for i in range(len(frames))]
    mixes: Culprit | None = None
    folds: Culprit | None = None
    for name in runner.intermediate_names:
        broken = _non_finite(batched[name], [a[name] for a in alone])
        if broken is not None:
            node = view.producers[name]
            hint = "the graph computes NaN or Inf here (e.g. a Sqrt or Log of a negative value, a division by zero), which no comparison of frames can pass"
            return Culprit(node_label(node), node.op_type, NON_FINITE, broken, hint), folds
        verdict = _compare(batched[name], [a[name] for a in alone], atol)
        if verdict is None:
            continue
        kind, detail = verdict
        node = view.producers[name]
        label = node_label(node)
        hint = lint_by_node.get(
            label, GENERIC_HINTS.get(node.op_type, f"{node.op_type} combines values of different frames")
        )
        if node.op_type == "Transpose":  # the fold itself usually happens in the Reshape right after
            after = [lint_by_node[node_label(c)] for c in view.consumers.get(name, []) if node_label(c) in lint_by_node]
            hint = "; ".join([hint, *after])
        culprit = Culprit(label, node.op_type, kind, detail, hint)
        if kind == "mixes" and mixes is None:
            mixes = culprit
        if kind == "folds" and folds is None:
            folds = culprit
        if mixes is not None:
            break
    return mixes, folds
