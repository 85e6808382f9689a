"""Check 1 (and the dynamic half of check 2): does a frame's output depend on its batch mates?

Every frame is run alone once; then for each batch size N the first N distinct frames run
together and every per-frame slice of every output is compared with that frame's single run.
An output whose dim 0 is not N cannot be sliced per frame: that is a layout failure
(batch-folded ``[N·K, C]`` outputs show up here).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from facebatch.core.errors import EngineError
from facebatch.core.progress import step
from facebatch.engines.runners.base import Runner

INDEPENDENCE_ATOL = 1e-5  # FP32 on onnxruntime CPU
# Sees every batch that ran: (N, each frame's single-run outputs, the batch's outputs by name).
BatchObserver = Callable[[int, Sequence[Mapping[str, np.ndarray]], Mapping[str, np.ndarray]], None]
DEFAULT_BATCH_SIZES = (1, 2, 3, 4, 7, 8, 15, 16, 31, 32)


@dataclass(frozen=True)
class SliceDiff:
    """One output at one batch size: the largest per-frame difference and where it is."""

    output: str
    batch: int
    max_abs_diff: float
    frame: int | None = None  # which frame of the batch
    index: tuple[int, ...] = ()  # position inside that frame's slice
    layout_problem: str | None = None  # dim 0 is not the batch: nothing to slice

    def passed(self, atol: float) -> bool:
        return self.layout_problem is None and np.isfinite(self.max_abs_diff) and self.max_abs_diff < atol

    def describe(self) -> str:
        if self.layout_problem:
            return f"{self.output} @ batch {self.batch}: {self.layout_problem}"
        return f"{self.output} @ batch {self.batch}: {self.max_abs_diff:.3g} at frame {self.frame} index {list(self.index)}"


@dataclass
class IndependenceReport:
    atol: float
    batch_sizes: tuple[int, ...]
    diffs: list[SliceDiff] = field(default_factory=list)
    error: str | None = None  # the batch could not run at all

    @property
    def passed(self) -> bool:
        return self.error is None and bool(self.diffs) and all(d.passed(self.atol) for d in self.diffs)

    def value_failures(self) -> list[SliceDiff]:
        return [d for d in self.diffs if d.layout_problem is None and not d.passed(self.atol)]

    def layout_failures(self) -> list[SliceDiff]:
        return [d for d in self.diffs if d.layout_problem is not None]

    def worst(self) -> SliceDiff | None:
        ok = [d for d in self.diffs if d.layout_problem is None]
        return max(ok, key=lambda d: d.max_abs_diff) if ok else None

    def to_dict(self) -> dict:
        return {
            "passed": self.passed,
            "atol": self.atol,
            "batch_sizes": list(self.batch_sizes),
            "error": self.error,
            "results": [asdict(d) | {"passed": d.passed(self.atol)} for d in self.diffs],
        }


def _layout_problem(batched: np.ndarray, alone: np.ndarray, n: int) -> str | None:
    if batched.ndim == 0 or batched.shape[0] != n:
        dim0 = batched.shape[0] if batched.ndim else "none"
        if (
            batched.ndim
            and alone.ndim
            and batched.shape[1:] == alone.shape[1:]
            and batched.shape[0] == n * alone.shape[0]
            and n > 1
        ):
            return f"dim 0 is {dim0} = {n} × {alone.shape[0]}: the batch is folded into the rows ([N·K, C])"
        return f"dim 0 is {dim0}, expected the batch size {n} (shape {list(batched.shape)})"
    if batched.shape[1:] != alone.shape[1:]:
        return f"per-frame shape {list(batched.shape[1:])} differs from the single-frame {list(alone.shape[1:])}"
    return None


def verify_batch_independence(
    runner: Runner,
    frames: np.ndarray,
    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
    atol: float = INDEPENDENCE_ATOL,
    on_batch: BatchObserver | None = None,
) -> IndependenceReport:
    """Run through an active single-input ``runner``. ``frames`` must be distinct and at least
    max(batch_sizes) many. ``on_batch`` lets another check (decoded detections) reuse the same
    runs instead of repeating them."""
    sizes = tuple(batch_sizes)
    report = IndependenceReport(atol, sizes)
    count = max(sizes)
    (source,) = runner.inputs
    with step(f"run {count} frames one at a time"):
        alone = [runner.infer({source.name: frames[i : i + 1]}) for i in range(count)]
    with step(f"run batches of {', '.join(map(str, sizes))} and compare every frame"):
        for n in sizes:
            try:
                batched = runner.infer({source.name: frames[:n]})
            except EngineError as exc:  # the runtime refuses: a fixed or inconsistent batch
                report.error = f"batch {n} does not run: {exc}"
                return report
            for name, out in batched.items():
                report.diffs.append(_slice_diff(name, n, out, [alone[i][name] for i in range(n)]))
            if on_batch is not None:
                on_batch(n, alone, batched)
    return report


def _slice_diff(name: str, n: int, batched: np.ndarray, alone: Sequence[np.ndarray]) -> SliceDiff:
    """One output at batch ``n``: its per-frame slices against each frame's single run."""
    problem = _layout_problem(batched, alone[0], n)
    if problem:
        return SliceDiff(name, n, float("inf"), layout_problem=problem)
    diff = np.abs(batched.astype(np.float64) - np.concatenate(alone).astype(np.float64))
    if diff.size == 0:
        return SliceDiff(name, n, 0.0)
    flat = int(np.nanargmax(diff)) if not np.isnan(diff).all() else 0
    where = np.unravel_index(flat, diff.shape)
    worst = float("nan") if np.isnan(diff).any() else float(diff.reshape(-1)[flat])
    return SliceDiff(name, n, worst, int(where[0]), tuple(int(i) for i in where[1:]))
