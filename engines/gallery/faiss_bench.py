"""The FAISS half of ``make bench-gallery`` (benchmark.py runs it): every index type built as ``index`` builds it
on synthetic unit vectors, tuned to the recall target, and judged against exact search on fresh queries, with
build time, memory and latency. Measurements, not tests.

The synthetic vectors are built like a face gallery: ``N / 10`` identities, each a random unit
centre, and 10 photos each = centre + Gaussian noise, renormalised (cosine to the centre ~0.7,
as one person's photos are); queries are fresh noisy samples of gallery identities. Uniform
random vectors would be unlike any gallery: nearest neighbours among them are almost ties.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facebatch.engines.gallery.defaults import DEFAULT_RECALL, TUNED_PARAMETER
from facebatch.engines.gallery.faiss_index import IndexChoice, add_rows, build_index, import_faiss
from facebatch.engines.gallery.recall import held_out, tune

PHOTOS_PER_IDENTITY = 10
NOISE = 0.035  # per dimension at 512-d (scaled by √(512/D)): cosine of a photo to its identity's centre ≈ 0.7


def synthetic_gallery(rows: int, dimension: int, queries: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    identities = max(1, rows // PHOTOS_PER_IDENTITY)
    centres = rng.standard_normal((identities, dimension), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    noise = NOISE * np.sqrt(512 / dimension)

    def samples(owners: np.ndarray) -> np.ndarray:
        out = np.empty((len(owners), dimension), np.float32)
        for start in range(0, len(owners), 65536):  # in blocks: 1M × 512 of noise at once would double the memory
            part = owners[start : start + 65536]
            block = centres[part] + noise * rng.standard_normal((len(part), dimension), dtype=np.float32)
            out[start : start + len(part)] = block / np.linalg.norm(block, axis=1, keepdims=True)
        return out

    return samples(np.arange(rows) % identities), samples(rng.integers(0, identities, queries))


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class IndexMeasurement:
    kind: str
    parameters: dict
    rows: int
    build_s: float
    index_mib: float
    rss_growth_mib: float
    single_p50_ms: float
    single_p99_ms: float
    batch64_p50_ms: float
    batch64_p99_ms: float
    recall_at_1: float
    recall_at_10: float
    tune_s: float = 0.0  # held-out queries' exact search + tuning the search parameter (what index adds)
    held_out_at_1: float = 1.0  # recall@1 index measured on its held-out queries at the tuned value
    reached: bool = True  # the held-out recall@1 reached the target
    # a search process that read the index from disk as search does (flat, ivfpq_refine: the memory bound's
    # reference and subject): its resident growth, anonymous and file-backed
    search_anon_mib: float | None = None
    search_file_mib: float | None = None


def _percentiles(samples: list[float]) -> tuple[float, float]:
    return float(np.percentile(samples, 50) * 1000), float(np.percentile(samples, 99) * 1000)


def measure_index(
    kind: str,
    parameters: dict,
    vectors: np.ndarray,
    queries: np.ndarray,
    exact: np.ndarray,
    threads: int,
    target: float = DEFAULT_RECALL,
) -> IndexMeasurement:
    """Build as ``index`` does (the search parameter tuned to ``target`` on held-out gallery queries unless
    pinned), then judge it on the benchmark's own queries: fresh photos of gallery identities."""
    faiss = import_faiss()
    faiss.omp_set_num_threads(threads)
    ids = np.arange(len(vectors))
    began = time.perf_counter()
    held = held_out(ids, vectors) if kind != "flat" and not parameters.get(TUNED_PARAMETER[kind]) else None
    holding = time.perf_counter() - began  # their exact search: part of the tuning's time
    before = rss_mib()
    began = time.perf_counter()
    later = None if held is None else held.left_out
    index, values = build_index(IndexChoice(kind, parameters, target), ids, vectors, threads, later=later)
    build = time.perf_counter() - began
    began, held_at_1, reached = time.perf_counter(), 1.0, True
    if held is not None:
        values[TUNED_PARAMETER[kind]], recall, reached = tune(index, kind, values, held, target)
        held_at_1 = recall.at_1
    tuning = time.perf_counter() - began + holding
    began = time.perf_counter()
    if held is not None:
        add_rows(index, ids, vectors, held.left_out)  # as index does once measured
    build += time.perf_counter() - began
    growth = rss_mib() - before
    if kind in FROM_DISK:
        with tempfile.TemporaryDirectory(prefix="facebatch-gallery-bench-") as folder:
            size, searched = search_from_disk(index, kind, values, queries, exact, threads, Path(folder))
        del index
        return IndexMeasurement(
            kind, values, len(vectors), build, size, growth, *searched["timings"], tune_s=tuning,
            held_out_at_1=held_at_1, reached=reached, search_anon_mib=searched["anon_mib"],
            search_file_mib=searched["file_mib"],
        )  # fmt: skip
    size = len(faiss.serialize_index(index)) / 2**20
    timings = timed_searches(index, queries, exact)
    del index
    return IndexMeasurement(
        kind, values, len(vectors), build, size, growth, *timings, tuning, held_at_1, reached,
    )  # fmt: skip


def timed_searches(index, queries: np.ndarray, exact: np.ndarray) -> tuple[float, ...]:
    """Single-query and batch-of-64 p50/p99 ms, recall@1 and @10 of ``index`` against the ``exact`` ids."""
    large = index.ntotal >= 500_000  # exact search over 1M takes seconds per batch: fewer samples
    singles = []
    for query in queries[: 100 if large else 200]:
        start = time.perf_counter()
        index.search(query[None], 10)
        singles.append(time.perf_counter() - start)
    batches = []
    for start_row in range(0, min(len(queries), 64 * (10 if large else 30)), 64):
        start = time.perf_counter()
        index.search(queries[start_row : start_row + 64], 10)
        batches.append(time.perf_counter() - start)
    _, found = index.search(queries, 10)
    at_1 = float(np.mean(found[:, 0] == exact[:, 0]))
    at_10 = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, exact, strict=True)]))
    return *_percentiles(singles), *_percentiles(batches), at_1, at_10


FROM_DISK = ("flat", "ivfpq_refine")  # measured in a search process that reads the written index
SEARCH_FROM_DISK = """
import json, sys
from pathlib import Path
import numpy as np
from facebatch.engines.gallery.faiss_bench import timed_searches
from facebatch.engines.gallery.faiss_index import import_faiss, read_index, set_search_parameters

def resident():
    fields = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
    return {key: int(fields[key].split()[0]) / 1024 for key in ("RssAnon", "RssFile")}

folder, threads = Path(sys.argv[1]), int(sys.argv[2])
record = json.loads((folder / "record.json").read_text())
queries, exact = np.load(folder / "queries.npy"), np.load(folder / "exact.npy")
import_faiss().omp_set_num_threads(threads)
before = resident()
index = read_index(folder / "index.faiss", record, "rebuild it")
set_search_parameters(index, record["type"], record["parameters"])
timings = timed_searches(index, queries, exact)
after = resident()
print(json.dumps({"timings": timings, "anon_mib": after["RssAnon"] - before["RssAnon"],
                  "file_mib": after["RssFile"] - before["RssFile"]}))
"""


def search_from_disk(index, kind: str, values: dict, queries, exact, threads: int, folder: Path) -> tuple[float, dict]:
    """``index`` written as ``index`` writes it, then read and searched by a fresh process as ``search`` does:
    the file's MiB and that process's timings and resident growth (queries after the written file is in the page
    cache: a cold disk adds its random reads to the re-ranked index's latency)."""
    import json

    from facebatch.engines.gallery.faiss_index import write_index

    written = write_index(index, folder / "index.faiss")
    dimension = queries.shape[1]
    record = {"type": kind, "rows": int(index.ntotal), "dimension": dimension, "parameters": values, **written}
    (folder / "record.json").write_text(json.dumps(record))
    np.save(folder / "queries.npy", queries)
    np.save(folder / "exact.npy", exact)
    done = subprocess.run(
        [sys.executable, "-c", SEARCH_FROM_DISK, str(folder), str(threads)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"the search process failed: {done.stderr.strip().splitlines()[-1:]}")
    return written["bytes"] / 2**20, json.loads(done.stdout.strip().splitlines()[-1])


def faiss_table(
    sizes: list[int],
    dimension: int,
    kinds: list[tuple[str, dict]],
    queries: int,
    threads: int,
    log=print,
    target: float = DEFAULT_RECALL,
) -> list[IndexMeasurement]:
    faiss = import_faiss()
    measured = []
    for rows in sizes:
        vectors, asked = synthetic_gallery(rows, dimension, queries)
        flat = faiss.IndexFlatIP(dimension)
        flat.add(vectors)
        _, exact = flat.search(asked, 10)  # the truth every index is judged against
        del flat
        for kind, parameters in kinds:
            result = measure_index(kind, parameters, vectors, asked, exact, threads, target)
            log(
                f"{rows} × {dimension}: {kind} {result.parameters}: build {result.build_s:.1f} s + tune "
                f"{result.tune_s:.1f} s, recall@1 {result.recall_at_1:.3f} (held out {result.held_out_at_1:.3f}), "
                f"1 query p50 {result.single_p50_ms:.2f} ms"
            )
            measured.append(result)
        del vectors
    return measured


def faiss_markdown(measured: list[IndexMeasurement], dimension: int, queries: int) -> str:
    lines = [
        "| N | index | parameters | build s | tune s | index MiB | RSS growth MiB | search process MiB | "
        "1 query p50 / p99 ms | 64 queries p50 / p99 ms | recall@1 | recall@10 | held-out recall@1 |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m in measured:
        shown = ", ".join(f"{k}={v}" for k, v in m.parameters.items()) or "—"
        held = "exact" if m.kind == "flat" else f"{m.held_out_at_1:.3f}" + ("" if m.reached else " (short)")
        searched = "—" if m.search_anon_mib is None else f"{m.search_anon_mib:.0f} + {m.search_file_mib:.0f}"
        lines.append(
            f"| {m.rows:,} | {m.kind} | {shown} | {m.build_s:.1f} | {m.tune_s:.1f} | {m.index_mib:.0f} | "
            f"{m.rss_growth_mib:.0f} | {searched} | {m.single_p50_ms:.2f} / {m.single_p99_ms:.2f} | {m.batch64_p50_ms:.1f} / "
            f"{m.batch64_p99_ms:.1f} | {m.recall_at_1:.3f} | {m.recall_at_10:.3f} | {held} |"
        )
    return (
        "\n".join(lines) + f"\n\n{dimension}-d, {queries:,} queries (fresh photos of gallery identities), recall "
        "against IndexFlatIP on the same vectors. The search parameter (nprobe, ef_search) is tuned as `index` "
        "tunes it: the smallest value whose recall@1 on held-out gallery queries reaches the target; tune s is that "
        "tuning (exact search of the held-out queries included), held-out recall@1 what it measured ('short': the "
        "target is out of reach, `index` would refuse it; the row shows the best setting). RSS growth is the "
        "building process's. For flat and ivfpq_refine the index is also written as `index` writes it and a fresh "
        "process reads and searches it as `search` does: search process MiB is its resident growth, anonymous + "
        "file-backed (pages of files mapped into it), and the latencies and recall in their rows are "
        "that process's (the written file in the page cache).\n"
    )
