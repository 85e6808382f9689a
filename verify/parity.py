"""Compare named outputs against a reference within per-output tolerances from the spec.

Every output is compared before anything is decided (optimum's ``_run_validation``), so a
report lists all failures, not only the first. An element passes when
``|actual - expected| <= atol + rtol * |expected|`` (numpy's ``isclose``); embeddings must
also keep every row's cosine similarity at or above ``min_cosine``.

``judged`` limits an output to some of its elements (a mask per output name, broadcast over
it): a reduced-precision detector's boxes and landmarks are judged only at anchors whose score
can matter (``scoring_anchors``); the report says where it judged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from facebatch.configs.spec import ModelSpec, TensorSpec, limit_text
from facebatch.core.errors import SpecError
from facebatch.engines.runners.base import Runner


@dataclass(frozen=True)
class OutputDiff:
    name: str
    max_abs_diff: float
    atol: float
    worst_index: tuple[int, ...]
    min_cosine: float | None = None
    cosine_floor: float | None = None
    rtol: float = 0.0
    outside: int = 0  # elements beyond atol + rtol·|expected|
    judged: str = ""  # where the elements were judged, in words, when not everywhere

    def failure_text(self) -> str:
        """Why this output failed, in words."""
        if not np.isfinite(self.max_abs_diff) and not self.worst_index:
            return f"{self.name} missing or misshapen"
        parts = []
        if self.outside or not np.isfinite(self.max_abs_diff):
            parts.append(
                f"{self.max_abs_diff:.3g} > {limit_text(self.atol, self.rtol)} at {list(self.worst_index)} ({self.outside} elements)"
            )
        if self.cosine_floor is not None and (self.min_cosine is None or self.min_cosine < self.cosine_floor):
            cosine = "not computable" if self.min_cosine is None else f"{self.min_cosine:.9f}"
            parts.append(f"cosine {cosine} < {self.cosine_floor}")
        where = f" {self.judged}" if self.judged else ""
        return f"{self.name}{where} " + ", ".join(parts)

    @property
    def passed(self) -> bool:
        if not np.isfinite(self.max_abs_diff) or self.outside:
            return False
        return self.cosine_floor is None or (self.min_cosine is not None and self.min_cosine >= self.cosine_floor)


@dataclass
class ParityReport:
    label: str
    diffs: list[OutputDiff] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.diffs) and all(d.passed for d in self.diffs)

    @property
    def max_abs_diff(self) -> float:
        return max((d.max_abs_diff for d in self.diffs), default=float("nan"))

    def failures(self) -> list[OutputDiff]:
        return [d for d in self.diffs if not d.passed]

    def summary(self) -> str:
        bad = self.failures()
        if not bad:
            return f"{self.label}: max abs diff {self.max_abs_diff:.3g} over {len(self.diffs)} outputs"
        parts = [d.failure_text() for d in bad]
        return f"{self.label}: {len(bad)} of {len(self.diffs)} outputs differ: " + "; ".join(parts)

    def to_dict(self) -> dict:
        return {
            "label": self.label,
            "passed": self.passed,
            "outputs": [asdict(d) | {"passed": d.passed} for d in self.diffs],
        }


def _row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a2, b2 = a.reshape(a.shape[0], -1).astype(np.float64), b.reshape(b.shape[0], -1).astype(np.float64)
    norms = np.linalg.norm(a2, axis=1) * np.linalg.norm(b2, axis=1)
    return np.sum(a2 * b2, axis=1) / np.maximum(norms, 1e-30)


@dataclass(frozen=True)
class Judged:
    """Which elements of some outputs are judged: a boolean mask per output name (broadcast over
    that output), and the rule in words."""

    masks: Mapping[str, np.ndarray]
    rule: str


def compare_outputs(
    label: str,
    actual: Mapping[str, np.ndarray],
    expected: Mapping[str, np.ndarray],
    specs: Sequence[TensorSpec],
    atol: float | None = None,
    judged: Judged | None = None,
) -> ParityReport:
    """One ``OutputDiff`` per spec'd output; a missing or misshapen output is an infinite diff.
    ``atol`` (a reference's gate, e.g. seeded weights) loosens outputs whose spec atol is smaller;
    ``judged`` limits the outputs it names to the elements its masks select."""
    report = ParityReport(label)
    for spec in specs:
        tol = spec.atol if atol is None else max(atol, spec.atol)  # a reference's gate loosens, never tightens
        a, e = actual.get(spec.name), expected.get(spec.name)
        if a is None or e is None or a.shape != e.shape:
            report.diffs.append(OutputDiff(spec.name, float("inf"), tol, (), rtol=spec.rtol))
            continue
        diff = np.abs(a.astype(np.float64) - e.astype(np.float64))
        where = ""
        if judged is not None and spec.name in judged.masks:
            mask = np.broadcast_to(judged.masks[spec.name], diff.shape)
            diff = np.where(mask, diff, 0.0)  # elements not judged count as equal
            where = f"({judged.rule}: {int(np.count_nonzero(mask))} of {diff.size} elements)"
        outside = int(np.count_nonzero(~(diff <= tol + spec.rtol * np.abs(e.astype(np.float64)))))  # NaN counts
        worst = tuple(int(i) for i in np.unravel_index(int(np.nanargmax(diff)), diff.shape)) if diff.size else ()
        max_diff = float(np.max(diff)) if diff.size else 0.0
        if np.isnan(diff).any():
            max_diff = float("nan")
        min_cos = float(np.min(_row_cosines(a, e))) if spec.min_cosine is not None else None
        report.diffs.append(
            OutputDiff(spec.name, max_diff, tol, worst, min_cos, spec.min_cosine, spec.rtol, outside, where)
        )
    return report


def runner_parity(
    actual: Runner,
    expected: Runner,
    spec: ModelSpec,
    frames: np.ndarray,
    batch_sizes: Sequence[int],
    atol: float | None = None,
) -> list[ParityReport]:
    """Two active runners on the first N of ``frames`` (distinct) for each batch size N, one
    report each. ``atol`` (seeded weights' gate) loosens each output's spec atol that is smaller,
    never tightens one (``compare_outputs``)."""
    if max(batch_sizes) > len(frames):
        raise SpecError(f"{len(frames)} frames cannot fill batch size {max(batch_sizes)}")
    reports = []
    for n in batch_sizes:
        feed = {spec.input.name: frames[:n]}
        reports.append(compare_outputs(f"batch {n}", actual.infer(feed), expected.infer(feed), spec.outputs, atol))
    return reports
