"""Recall as a measured property of every gallery index.

An approximate index (ivf, ivfpq, ivfpq_refine, hnsw) is judged on queries held out from the gallery itself:
a sample of its own embeddings, left out of the index while it is measured and tuned, and added once it is. A
stored photo of someone, searched among that person's other photos and everyone else's, is what a search asks:
a new photo of an enrolled person. Left out of the index, not only out of the answers: searched for while in
an HNSW graph, a vector's own links lead straight to its nearest neighbours (measured at 100k × 512-d: 0.994
on such queries at efSearch 17, 0.960 on fresh photos). Measured on faiss_bench.py's synthetic galleries against
fresh photos of gallery identities: see docs/gallery.md ("Recall"). The queries used before, embeddings
perturbed like a second photo, measured ivf up to 0.011 above fresh photos (tuned on them to 0.99 at 300k, it
delivered 0.983). Recall@1 and @10 are counted
against exact search (``faiss.knn`` over the same vectors; a returned face as near as the exact one counts,
so duplicate photos are no misses), and the search-time parameter (nprobe, efSearch) is tuned to the
smallest value reaching the target (less one standard error of the sample). A pinned value (asked for
by name) is measured, not tuned. ``auto`` takes flat for a small gallery, else builds ``AUTO_CANDIDATES`` in
turn, stopping at one that meets the target within ``AUTO_FAST_ENOUGH_MS``, and keeps the fastest that meets
it. ``ivfpq_refine`` re-ranks IVF-PQ's candidates from the vectors on disk (refine.py). FAISS's
``ParameterSpace``/``OperatingPoints`` explore every parameter combination for a criterion on ids; here one
monotone parameter is searched (doubling, then bisection) against a tie-aware criterion, which takes a few
evaluations.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from facebatch.core.errors import SpecError
from facebatch.core.progress import note, warn
from facebatch.engines.gallery.defaults import (
    AUTO_CANDIDATES,
    AUTO_FAST_ENOUGH_MS,
    AUTO_FLAT_MAX_VALUES,
    HNSW_MAX_EF_SEARCH,
    LATENCY_QUERIES,
    RECALL_K,
    RECALL_QUERIES,
    ROW_BLOCK,
    TUNED_PARAMETER,
)
from facebatch.engines.gallery.faiss_index import (
    IndexChoice,
    add_rows,
    build_index,
    import_faiss,
    index_description,
    set_search_parameters,
)

TIE = 1e-5  # a returned face within this cosine of the exact one is as near (a duplicate photo, float noise)
QUERIES_ARE = "gallery embeddings held out of the index while it was measured (added after), judged among the rest"


@dataclass(frozen=True)
class Recall:
    """One index at one setting, measured on the held-out queries."""

    at_1: float
    at_10: float
    latency_p50_ms: float
    queries: int

    @property
    def standard_error(self) -> float:
        return math.sqrt(self.at_1 * (1 - self.at_1) / max(self.queries, 1))

    def reaches(self, target: float) -> bool:
        """The measured recall@1 less one standard error reaches ``target``: the margin covers the sampling of
        the held-out queries. Without it, ivf tuned to 0.990 at 300k measured 0.980 on fresh photos (500 queries,
        standard error 0.0045; docs/benchmarks/gallery_recall_epyc_2core.md)."""
        return self.at_1 - self.standard_error >= target


@dataclass
class HeldOut:
    """The held-out queries with their exact neighbours (cosines, best first) and how to score a search."""

    queries: np.ndarray
    exact: np.ndarray  # [Q, k] cosines of the exact top k
    vectors: np.ndarray
    ids: np.ndarray  # sorted gallery ids and their row in ``vectors``
    rows: np.ndarray
    left_out: np.ndarray  # [rows] bool: the queries' own rows, not in the index while it is measured

    def cosines(self, found: np.ndarray) -> np.ndarray:
        """The true cosine of each returned id (-inf for none)."""
        valid = found >= 0
        at = np.searchsorted(self.ids, np.where(valid, found, self.ids[0]))
        at = np.clip(at, 0, len(self.ids) - 1)
        rows = self.rows[at]
        true = np.einsum("qkd,qd->qk", self.vectors[rows], self.queries)
        return np.where(valid & (self.ids[at] == found), true, -np.inf)

    def score(self, found: np.ndarray) -> tuple[float, float]:
        """recall@1 and recall@k of the returned ids ``found`` [Q, k]."""
        true = self.cosines(found)
        at_1 = float(np.mean(true[:, 0] >= self.exact[:, 0] - TIE))
        k = self.exact.shape[1]
        at_k = float(np.mean(np.sum(true[:, :k] >= self.exact[:, -1:] - TIE, axis=1).clip(max=k) / k))
        return at_1, at_k


def held_out(ids: np.ndarray, vectors: np.ndarray, seed: int = 0) -> HeldOut:
    """``RECALL_QUERIES`` gallery embeddings (at most a quarter of them) held out as queries, and their exact top
    ``RECALL_K`` among the others by cosine. The index is built without them and measured on them; they join it
    after (``faiss_index.add_rows``)."""
    rng = np.random.default_rng(seed)
    rows = len(vectors)
    picked = np.sort(rng.choice(rows, size=max(1, min(RECALL_QUERIES, rows // 4)), replace=False))
    left_out = np.zeros(rows, bool)
    left_out[picked] = True
    queries = np.ascontiguousarray(vectors[picked], dtype=np.float32)
    exact = exact_among(queries, vectors, ~left_out, min(RECALL_K, rows - len(picked)))
    order = np.argsort(ids, kind="stable")
    return HeldOut(queries, exact, vectors, np.asarray(ids, np.int64)[order], order, left_out)


def exact_among(queries: np.ndarray, vectors: np.ndarray, kept: np.ndarray, k: int) -> np.ndarray:
    """The cosines [Q, k] of each query's exact top ``k`` among the rows ``kept`` marks, best first."""
    faiss = import_faiss()
    best = np.full((len(queries), k), -np.inf, np.float32)
    for start in range(0, len(vectors), ROW_BLOCK):  # a block of the kept rows is copied, not the gallery
        chosen = kept[start : start + ROW_BLOCK]
        if chosen.any():
            block = np.ascontiguousarray(vectors[start : start + ROW_BLOCK][chosen], dtype=np.float32)
            found, _ = faiss.knn(queries, block, min(k, len(block)), metric=faiss.METRIC_INNER_PRODUCT)
            merged = np.concatenate([best, found], axis=1)
            best = -np.sort(-merged, axis=1)[:, :k]
    return best


def measure(index, held: HeldOut, latency: bool = True) -> Recall:
    """Recall of ``index`` as it is set, and (``latency``) its p50 latency for one query at a time."""
    _, found = index.search(held.queries, held.exact.shape[1])
    at_1, at_10 = held.score(found)
    times = []
    for query in held.queries[:LATENCY_QUERIES] if latency else []:
        began = time.perf_counter()
        index.search(query[None], held.exact.shape[1])
        times.append(time.perf_counter() - began)
    return Recall(at_1, at_10, float(np.median(times) * 1000) if times else 0.0, len(held.queries))


def tuning_range(kind: str, values: dict[str, int], rows: int) -> tuple[int, int]:
    """The lowest and highest value the search parameter of ``kind`` is tried at."""
    if kind == "hnsw":
        return RECALL_K, max(RECALL_K, min(HNSW_MAX_EF_SEARCH, rows))
    return 1, values["nlist"]  # every list probed: exact for ivf


def tune(index, kind: str, values: dict[str, int], held: HeldOut, target: float) -> tuple[int, Recall, bool]:
    """The smallest value of ``kind``'s search parameter whose recall@1 reaches ``target`` (doubling, then
    bisection: recall grows with it), set on ``index``; else the highest tried. And whether it reached."""
    name = TUNED_PARAMETER[kind]
    measured: dict[int, Recall] = {}

    def at(value: int) -> Recall:
        if value not in measured:
            set_search_parameters(index, kind, {**values, name: value})
            measured[value] = measure(index, held, latency=False)  # timed once chosen
        return measured[value]

    low, high = tuning_range(kind, values, len(held.vectors))
    below, value = low - 1, low
    while not at(value).reaches(target) and value < high:
        below, value = value, min(high, value * 2)
    if not at(value).reaches(target):
        best = max(measured, key=lambda v: (measured[v].at_1, -v))
        set_search_parameters(index, kind, {**values, name: best})
        return best, measure(index, held), False
    while value - below > 1:  # the smallest reaching value lies in (below, value]
        middle = (below + value) // 2
        below, value = (below, middle) if at(middle).reaches(target) else (middle, value)
    set_search_parameters(index, kind, {**values, name: value})
    return value, measure(index, held), True


@dataclass
class MeasuredIndex:
    """A built index, its kind and parameters (tuned ones filled in) and what was measured."""

    index: Any
    kind: str
    values: dict[str, int]
    measured: dict[str, Any]  # the manifest's index "recall" record
    reached: bool = True

    @property
    def description(self) -> str:
        return index_description(self.kind, self.values)


def build_one(
    choice: IndexChoice, ids: np.ndarray, vectors: np.ndarray, held: HeldOut | None, threads: int
) -> MeasuredIndex:
    """``choice`` (not auto) built without the held-out rows, its search parameter tuned unless pinned, measured,
    and the held-out rows added (flat: exact)."""
    if choice.kind == "flat" or held is None:
        index, values = build_index(IndexChoice("flat", recall=choice.recall), ids, vectors, threads)
        return MeasuredIndex(index, "flat", values, {"exact": True, "at_1": 1.0, "at_10": 1.0})
    index, values = build_index(choice, ids, vectors, threads, later=held.left_out)
    name = TUNED_PARAMETER[choice.kind]
    if choice.parameters.get(name):
        recall, tuned = measure(index, held), None
        reached = recall.reaches(choice.recall)
    else:
        values[name], recall, reached = tune(index, choice.kind, values, held, choice.recall)
        tuned = name
    measured = {
        "target": choice.recall,
        "at_1": round(recall.at_1, 4),
        "at_10": round(recall.at_10, 4),
        "standard_error": round(recall.standard_error, 4),  # reached = at_1 less this reaches the target
        "latency_p50_ms": round(recall.latency_p50_ms, 3),
        "queries": len(held.queries),
        "queries_are": QUERIES_ARE,
        "tuned": tuned,
    }
    add_rows(index, ids, vectors, held.left_out)  # measured: the held-out faces join the index
    return MeasuredIndex(index, choice.kind, values, measured, reached)


def build_measured(choice: IndexChoice, ids: np.ndarray, vectors: np.ndarray, threads: int = 0) -> MeasuredIndex:
    """The index ``choice`` asks for, measured; auto's choice made. A target out of reach is refused
    (``SpecError`` on ``recall``, naming the best recall reached) before anything is written; a pinned
    search parameter below the target is kept with a warning."""
    rows, dimension = vectors.shape
    kind = choice.kind
    if kind not in ("flat", "auto") and rows == 1:
        note(f"a gallery of one face is searched exactly (flat): index {kind} has no other face to be measured on")
    if kind == "flat" or rows < 2 or (kind == "auto" and rows * dimension <= AUTO_FLAT_MAX_VALUES):
        return build_one(IndexChoice("flat", recall=choice.recall), ids, vectors, None, threads)
    held = held_out(ids, vectors)
    if kind != "auto":
        built = build_one(choice, ids, vectors, held, threads)
        if not built.reached and built.measured["tuned"] is None:
            name = TUNED_PARAMETER[kind]
            warn(
                f"index {kind} with {name}={built.values[name]} (as asked) measured recall@1 {built.measured['at_1']:.3f}"
                f", below the recall target {choice.recall:g}; leave {name} unset to tune it",
                "index_parameters",
            )
        elif not built.reached:
            raise SpecError(out_of_reach(choice.recall, [built]), field="recall")
        return built
    tried = []
    for candidate in AUTO_CANDIDATES:  # in turn; the next only if this one is short of the target or slow
        tried.append(build_one(IndexChoice(candidate, recall=choice.recall), ids, vectors, held, threads))
        if tried[-1].reached and tried[-1].measured["latency_p50_ms"] <= AUTO_FAST_ENOUGH_MS:
            break
    reaching = [b for b in tried if b.reached]
    if not reaching:
        raise SpecError(out_of_reach(choice.recall, tried), field="recall")
    best = min(reaching, key=lambda b: b.measured["latency_p50_ms"])
    best.measured["auto"] = [{"type": b.kind, **b.measured, "parameters": b.values} for b in tried]
    note(f"index auto chose {best.description}: {auto_summary(tried)}")
    return best


def auto_summary(tried: list[MeasuredIndex]) -> str:
    return "; ".join(
        f"{b.kind} recall@1 {b.measured['at_1']:.3f} at {b.measured['latency_p50_ms']:.2f} ms per query" for b in tried
    )


def out_of_reach(target: float, tried: list[MeasuredIndex]) -> str:
    """One line: the target, the best recall each index reached and at which setting, what to change."""
    best = "; ".join(
        f"{b.kind} reaches recall@1 {b.measured['at_1']:.3f} at best ({TUNED_PARAMETER[b.kind]}="
        f"{b.values[TUNED_PARAMETER[b.kind]]}, recall@10 {b.measured['at_10']:.3f})"
        for b in tried
    )
    advice = "lower it, or choose the exact index flat" + {
        "ivfpq": " (or ivfpq_refine, ivf or hnsw: ivfpq's compressed codes reorder near-identical faces)",
        "ivfpq_refine": " (or re-rank more candidates: a higher rerank)",
    }.get(tried[0].kind, "")
    return (
        f"recall {target:g} is out of reach on this gallery's held-out queries: {best}; {advice}. The index was not "
        "written (the shards are kept): build it again with no photos"
    )
