"""Gallery benchmarks (``make bench-gallery``): FAISS index types on synthetic unit vectors (faiss_bench.py), and
index throughput locally against Ray Data on this machine, with resident memory at 1× and 10× a
photo set. Measurements, not tests: the report says what was run and where.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from facebatch.engines.gallery import faiss_bench
from facebatch.engines.gallery.defaults import DEFAULT_RECALL
from facebatch.engines.gallery.faiss_bench import faiss_markdown, faiss_table

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
    parser.add_argument("--kinds", default="flat,hnsw,ivf,ivfpq,ivfpq_refine", help="the index types measured")
    parser.add_argument(
        "--skip-hnsw-above", type=int, default=100_000, help="HNSW's build is the slow one (minutes at 1M on 2 cores)"
    )
    args = parser.parse_args(argv)
    load_before = os.getloadavg()  # other work on the machine shows here: the latencies mean something on a quiet one
    sizes = [int(s) for s in args.sizes.split(",")]
    measured = []
    for rows in sizes:
        kinds = [(kind, {}) for kind in args.kinds.split(",")]
        if rows > args.skip_hnsw_above:
            kinds = [k for k in kinds if k[0] != "hnsw"]
        measured += faiss_table([rows], args.dimension, kinds, args.queries, args.threads, target=args.recall)
    runs = [] if args.skip_throughput else throughput(args.images, args.detector, args.embedder)
    env = environment()
    report = "\n".join(
        [
            "# Gallery benchmarks (facebatch index / search)",
            "",
            f"CPU: {env.get('cpu')} ({env.get('usable_cpus', '?')} CPUs, INT8 class {env.get('int8_cpu_class')}); {time.strftime('%Y-%m-%d')}; FAISS threads {args.threads}; load average (1, 5, 15 min) before {', '.join(f'{v:.2f}' for v in load_before)}, after {', '.join(f'{v:.2f}' for v in os.getloadavg())}.",
            ("" if args.skip_throughput else f"Models: {args.detector.name}, {args.embedder.name}. ")
            + f"Command: `python -m facebatch.engines.gallery.benchmark {shlex.join(sys.argv[1:] if argv is None else argv)}`.",
            "",
            "## FAISS on synthetic unit vectors",
            "",
            (faiss_bench.__doc__ or "").split("\n\n")[1].replace("\n", " "),
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
