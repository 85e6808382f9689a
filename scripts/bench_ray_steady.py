#!/usr/bin/env python3
"""Ray's steady state against a local run on one node: photos/s once started, and the start-up apart.

Each of local and Ray indexes a small and a large copy set of the fixture photos into a new gallery, each run in a
fresh process (engines/gallery/benchmark.py's index_run: Ray starts its local instance inside the run). The fixed
cost of a run (Python, the models, Ray's instance and its actors) is the same for both sizes, so

    steady photos/s = (large photos - small photos) / (large run s - small run s)
    start-up s      = small process s - small photos / steady photos/s

A measurement, not a test: the report names the CPU and the load average before and after (other work on the
machine shows there; the numbers mean something only on a quiet one).

    .venv/bin/python scripts/bench_ray_steady.py --images FIXTURES/images --detector D.onnx --embedder E.onnx \\
        --copies 6 60 --repeats 3 --out docs/benchmarks/ray_steady_CPU.md

The report gives every run, the medians of the repeats per (size, local or ray), and the steady state of the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from facebatch.engines.gallery.benchmark import index_run, photo_set


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def measure(images: Path, detector: Path, embedder: Path, copies: tuple[int, int], repeats: int) -> list[dict]:
    """Every (size, where) run ``repeats`` times, interleaved (local, ray, local, ray, ...), so that other work on
    the machine falls on both alike."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="facebatch-ray-steady-") as scratch:
        sets = {count: photo_set(images, count, Path(scratch) / f"photos_{count}x") for count in copies}
        for repeat in range(repeats):
            for count in copies:
                for where in ("local", "ray"):
                    began = time.perf_counter()
                    out = Path(scratch) / f"g_{count}_{where}_{repeat}"
                    summary = index_run(sets[count], out, detector, embedder, where)
                    process_s = time.perf_counter() - began
                    photos, rate = summary["photos_run"], summary["photos_per_second"]
                    run_s = photos / rate if rate else 0.0
                    rows.append({"where": where, "copies": count, "repeat": repeat, "photos": photos, "run_s": run_s,
                                 "process_s": process_s, "load_1min": os.getloadavg()[0]})  # fmt: skip
                    print(f"{where} {photos} photos: run {run_s:.1f} s, process {process_s:.1f} s")
    return rows


def medians(rows: list[dict]) -> list[dict]:
    """One row per (where, size): the median run and process seconds of its repeats."""
    keys = sorted({(r["copies"], r["where"]) for r in rows})
    out = []
    for copies, where in keys:
        runs = [r for r in rows if (r["copies"], r["where"]) == (copies, where)]
        out.append({"where": where, "photos": runs[0]["photos"], "repeats": len(runs),
                    "run_s": statistics.median(r["run_s"] for r in runs),
                    "process_s": statistics.median(r["process_s"] for r in runs)})  # fmt: skip
    return out


def steady_state(rows: list[dict], where: str) -> dict:
    small, large = sorted((r for r in rows if r["where"] == where), key=lambda r: r["photos"])
    rate = (large["photos"] - small["photos"]) / (large["run_s"] - small["run_s"])
    return {"photos_per_s": rate, "startup_s": small["process_s"] - small["photos"] / rate}


def report(rows: list[dict], loads: tuple[tuple[float, ...], tuple[float, ...]]) -> str:
    local, ray = steady_state(medians(rows), "local"), steady_state(medians(rows), "ray")
    repeats = sorted({r["repeat"] for r in rows})
    pairs = [
        [steady_state([r for r in rows if r["repeat"] == n], where) for where in ("local", "ray")] for n in repeats
    ]
    lines = [
        "# Ray's steady state against local on one node",
        "",
        f"CPU: {cpu_name()}, {os.cpu_count()} cores; load average (1, 5, 15 min) before "
        f"{', '.join(f'{x:.2f}' for x in loads[0])}, after {', '.join(f'{x:.2f}' for x in loads[1])}.",
        "",
        f"Command: `{' '.join([Path(sys.executable).name, *sys.argv])}`",
        "",
        "Each run (in the order run; load: the 1-minute load average after it):",
        "",
        "| where | photos | run s (index build excluded) | whole process s | load |",
        "|---|---:|---:|---:|---:|",
        *(
            f"| {r['where']} | {r['photos']} | {r['run_s']:.1f} | {r['process_s']:.1f} | {r['load_1min']:.2f} |"
            for r in rows
        ),
        "",
        "Medians of the repeats:",
        "",
        "| where | photos | repeats | run s | whole process s |",
        "|---|---:|---:|---:|---:|",
        *(
            f"| {r['where']} | {r['photos']} | {r['repeats']} | {r['run_s']:.1f} | {r['process_s']:.1f} |"
            for r in medians(rows)
        ),
        "",
        "| where | steady photos/s (large − small) | start-up s |",
        "|---|---:|---:|",
        f"| local | {local['photos_per_s']:.2f} | {local['startup_s']:.1f} |",
        f"| ray | {ray['photos_per_s']:.2f} | {ray['startup_s']:.1f} |",
        "",
        f"Ray's steady state: {ray['photos_per_s'] / local['photos_per_s']:.2f}× local's photos/s (of the medians).",
        "",
        "Each repeat alone (its four runs ran back to back, so under much the same load):",
        "",
        "| repeat | local photos/s | ray photos/s | ray ÷ local |",
        "|---:|---:|---:|---:|",
        *(
            f"| {n + 1} | {a['photos_per_s']:.2f} | {b['photos_per_s']:.2f} | {b['photos_per_s'] / a['photos_per_s']:.2f} |"
            for n, (a, b) in zip(repeats, pairs, strict=True)
        ),
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=Path, required=True, help="the photos copied (the fixture images)")
    parser.add_argument("--detector", type=Path, required=True)
    parser.add_argument("--embedder", type=Path, required=True)
    parser.add_argument("--copies", type=int, nargs=2, default=(6, 60), metavar=("SMALL", "LARGE"))
    parser.add_argument("--repeats", type=int, default=1, help="runs of each (size, local or ray), interleaved")
    parser.add_argument("--out", type=Path, help="the Markdown report (default: standard output)")
    args = parser.parse_args()
    if args.copies[0] >= args.copies[1]:
        parser.error("--copies: SMALL must be fewer than LARGE")
    if args.repeats < 1:
        parser.error("--repeats: at least 1")
    before = os.getloadavg()
    rows = measure(args.images, args.detector, args.embedder, tuple(args.copies), args.repeats)
    text = report(rows, (before, os.getloadavg()))
    if args.out:
        args.out.write_text(text)
        args.out.with_suffix(".json").write_text(json.dumps(rows, indent=2) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
