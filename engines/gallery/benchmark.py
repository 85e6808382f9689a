"""Gallery benchmarks (``make bench-gallery``): FAISS index types on synthetic unit vectors, and
index throughput locally against Ray Data on this machine, with resident memory at 1× and 10× a
photo set. Measurements, not tests: the report says what was run and where.

The synthetic vectors are built like a face gallery: ``N / 10`` identities, each a random unit
centre, and 10 photos each = centre + Gaussian noise, renormalised (cosine to the centre ~0.7,
as one person's photos are); queries are fresh noisy samples of gallery identities. Uniform
random vectors would be unlike any gallery: nearest neighbours among them are almost ties.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facebatch.engines.gallery.defaults import DEFAULT_RECALL, SECOND_PHOTO_NOISE, TUNED_PARAMETER
from facebatch.engines.gallery.faiss_index import IndexChoice, build_index, import_faiss
from facebatch.engines.gallery.recall import held_out, tune

PHOTOS_PER_IDENTITY = 10
NOISE = SECOND_PHOTO_NOISE  # per dimension at 512-d: cosine of a photo to its identity's centre ≈ 0.7


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
    before = rss_mib()
    began = time.perf_counter()
    ids = np.arange(len(vectors))
    index, values = build_index(IndexChoice(kind, parameters, target), ids, vectors, threads)
    build = time.perf_counter() - began
    growth = rss_mib() - before
    began, held_at_1, reached = time.perf_counter(), 1.0, True
    if kind != "flat" and not parameters.get(TUNED_PARAMETER[kind]):
        values[TUNED_PARAMETER[kind]], recall, reached = tune(index, kind, values, held_out(ids, vectors), target)
        held_at_1 = recall.at_1
    tuning = time.perf_counter() - began
    size = len(faiss.serialize_index(index)) / 2**20
    large = len(vectors) >= 500_000  # exact search over 1M takes seconds per batch: fewer samples
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
    del index
    return IndexMeasurement(
        kind, values, len(vectors), build, size, growth, *_percentiles(singles), *_percentiles(batches), at_1, at_10,
        tuning, held_at_1, reached,
    )  # fmt: skip


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
        "| N | index | parameters | build s | tune s | index MiB | RSS growth MiB | 1 query p50 / p99 ms | "
        "64 queries p50 / p99 ms | recall@1 | recall@10 | held-out recall@1 |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m in measured:
        shown = ", ".join(f"{k}={v}" for k, v in m.parameters.items()) or "—"
        held = "exact" if m.kind == "flat" else f"{m.held_out_at_1:.3f}" + ("" if m.reached else " (short)")
        lines.append(
            f"| {m.rows:,} | {m.kind} | {shown} | {m.build_s:.1f} | {m.tune_s:.1f} | {m.index_mib:.0f} | "
            f"{m.rss_growth_mib:.0f} | {m.single_p50_ms:.2f} / {m.single_p99_ms:.2f} | {m.batch64_p50_ms:.1f} / "
            f"{m.batch64_p99_ms:.1f} | {m.recall_at_1:.3f} | {m.recall_at_10:.3f} | {held} |"
        )
    return (
        "\n".join(lines) + f"\n\n{dimension}-d, {queries:,} queries (fresh photos of gallery identities), recall "
        "against IndexFlatIP on the same vectors. The search parameter (nprobe, ef_search) is tuned as `index` "
        "tunes it: the smallest value whose recall@1 on held-out gallery queries reaches the target; tune s is that "
        "tuning (exact search of the held-out queries included), held-out recall@1 what it measured ('short': the "
        "target is out of reach, `index` would refuse it; the row shows the best setting).\n"
    )


# -- index throughput and memory -------------------------------------------------------------------------
INDEX_RUN = """
import json, sys, time
from pathlib import Path
from facebatch.configs.model_file import read_model_file
from facebatch.engines.gallery.index_job import IndexJob, index_photos
photos, out, detector, embedder, ray = sys.argv[1:6]
request = IndexJob(photos=[Path(photos)], out=Path(out), detector=read_model_file(Path(detector)),
                       embedder=read_model_file(Path(embedder)), ray=ray == "ray")
summary = index_photos(request)
# VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec, so a child of a big process would report the parent's
peak = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")) / 1024
print(json.dumps({**summary.to_dict(), "max_rss_mib": peak}))
"""


def photo_set(source: Path, copies: int, into: Path) -> Path:
    """``copies`` copies of every photo of ``source`` (distinct files: the gallery indexes each)."""
    into.mkdir(parents=True, exist_ok=True)
    for copy in range(copies):
        for photo in sorted(p for p in source.iterdir() if p.is_file()):
            shutil.copyfile(photo, into / f"{copy:03d}_{photo.name}")
    return into


def index_run(photos: Path, out: Path, detector: Path, embedder: Path, where: str) -> dict:
    import json

    env = dict(os.environ, PYTHONWARNINGS="ignore")
    done = subprocess.run(
        [sys.executable, "-c", INDEX_RUN, str(photos), str(out), str(detector), str(embedder), where],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"index run failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def throughput(images: Path, detector: Path, embedder: Path, log=print) -> list[dict]:
    """Local and Ray, each on 1× and 10× the photos, each in a fresh process (its start-up and, for
    Ray, starting a local instance, are in its time)."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="facebatch-gallery-bench-") as scratch:
        for copies in (1, 10):
            photos = photo_set(images, copies, Path(scratch) / f"photos_{copies}x")
            for where in ("local", "ray"):
                began = time.perf_counter()
                summary = index_run(photos, Path(scratch) / f"g_{copies}_{where}", detector, embedder, where)
                summary["process_s"] = time.perf_counter() - began
                summary["copies"] = copies
                log(
                    f"{copies}×, {where}: {summary['photos_run']} photos, {summary['photos_per_second']:.2f} photos/s, max RSS {summary['max_rss_mib']:.0f} MiB"
                )
                rows.append(summary)
    return rows


def throughput_markdown(rows: list[dict]) -> str:
    lines = [
        "| photos | where | photos run | faces | photos/s (run) | whole process s | max RSS MiB |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['copies']}× | {r['where']} | {r['photos_run']} | {r['faces_added']} | {r['photos_per_second']:.2f} | "
            f"{r['process_s']:.1f} | {r['max_rss_mib']:.0f} |"
        )
    by = {(r["copies"], r["where"]): r for r in rows}
    ratios = [
        f"{c}×: Ray {by[(c, 'ray')]['photos_per_second'] / by[(c, 'local')]['photos_per_second']:.2f} of local's photos/s"
        for c in (1, 10)
        if (c, "ray") in by and (c, "local") in by and by[(c, "local")]["photos_per_second"]
    ]
    return "\n".join(lines) + "\n\n" + "; ".join(ratios) + ".\n"


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json

    from facebatch.core.environment import environment

    parser = argparse.ArgumentParser(prog="python -m facebatch.engines.gallery.benchmark", description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="the report (.md; a .json beside it)")
    parser.add_argument("--detector", type=Path, required=True)
    parser.add_argument("--embedder", type=Path, required=True)
    parser.add_argument("--images", type=Path, required=True, help="the photos of the throughput runs")
    parser.add_argument("--sizes", default="100000,300000,1000000", help="gallery sizes of the FAISS table")
    parser.add_argument("--recall", type=float, default=DEFAULT_RECALL, help="the recall@1 target tuned to")
    parser.add_argument("--skip-throughput", action="store_true", help="the FAISS table only (no index runs)")
    parser.add_argument("--dimension", type=int, default=512)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--skip-hnsw-above", type=int, default=100_000, help="HNSW's build is the slow one (minutes at 1M on 2 cores)"
    )
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    measured = []
    for rows in sizes:
        kinds = [("flat", {}), ("hnsw", {}), ("ivf", {}), ("ivfpq", {})]
        if rows > args.skip_hnsw_above:
            kinds = [k for k in kinds if k[0] != "hnsw"]
        measured += faiss_table([rows], args.dimension, kinds, args.queries, args.threads, target=args.recall)
    runs = [] if args.skip_throughput else throughput(args.images, args.detector, args.embedder)
    env = environment()
    report = "\n".join(
        [
            "# Gallery benchmarks (facebatch index / search)",
            "",
            f"CPU: {env.get('cpu')} ({env.get('usable_cpus', '?')} CPUs, INT8 class {env.get('int8_cpu_class')}); {time.strftime('%Y-%m-%d')}; FAISS threads {args.threads}.",
            f"Models: {args.detector.name}, {args.embedder.name}. Command: `make bench-gallery`.",
            "",
            "## FAISS on synthetic unit vectors",
            "",
            (__doc__ or "").split("\n\n")[1].replace("\n", " "),
            "",
            f"Recall target {args.recall:g}.",
            "",
            faiss_markdown(measured, args.dimension, args.queries),
            f"HNSW above {args.skip_hnsw_above:,} rows is not run here (its build takes many minutes on this machine).",
            "",
        ]
    )
    if runs:
        report += "\n".join(
            [
                "## Index throughput: local against Ray Data on this machine",
                "",
                f"`facebatch index` on {args.images} (1×) and on 10 copies of it (10×), each run in a fresh process "
                "into a new gallery; Ray starts a local instance in its run. photos/s counts the photos run over the "
                "run's time without the index build; max RSS is the indexing process's (Ray's workers are other "
                "processes).",
                "",
                throughput_markdown(runs),
            ]
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    args.out.with_suffix(".json").write_text(
        json.dumps(
            {"environment": env, "faiss": [m.__dict__ for m in measured], "throughput": runs}, indent=1, default=str
        )
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
