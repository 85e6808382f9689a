"""``facebatch bench``: throughput per batch size of artifacts on backends, side by side,
with the file an artifact replaces and a published table beside them; the face pipeline over
photos; a served model per concurrency. The flags become one ``BenchOptions``; the library's
``bench`` (facebatch/workflows/bench.py) does the rest; here it is shown and written."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from facebatch.cli import arguments
from facebatch.cli.render import console_for, write_reports
from facebatch.engines.bench.defaults import (
    DEFAULT_BACKENDS,
    DEFAULT_BENCH_BATCH_SIZES,
    DEFAULT_PIPELINE_ROUNDS,
    DEFAULT_PROCESS_RUNS,
    DEFAULT_REQUEST_BATCH,
)
from facebatch.engines.bench.measure import Budget
from facebatch.engines.pipeline.defaults import DEFAULT_DETECT_BATCH, DEFAULT_EMBED_BATCH, DEFAULT_READ_WORKERS
from facebatch.engines.runners.backends import BACKENDS
from facebatch.engines.triton.defaults import DEFAULT_CONCURRENCY

if TYPE_CHECKING:
    from facebatch.workflows.bench import BenchOptions

# the fields whose flag has another name than the field (cli/errors.py names the flag in the library's messages)
FIELD_FLAGS = {"photos": "--images", "backends": "--backend", "published": "--compare", "triton_model": "--model"}


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "bench",
        help="throughput per batch size on every backend here, side by side with published tables",
        description="Benchmark artifacts (ours, or any SCRFD or embedder ONNX described like verify describes it) on one "
        "or more backends: per batch size fixed distinct frames, a warm-up, then timed calls; p50/p90/p99 latency, "
        "FPS = batch / median latency, ms per frame, min and max, the raw samples in the JSON. --baseline runs the "
        "batch-1 file an artifact replaces in the same run; --compare sets the results beside a published table.",
        epilog="backends:\n"
        + "\n".join(
            f"  {b.name:9} {b.description}" + (f" [{b.install}]" if b.install else "") for b in BACKENDS.values()
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("artifacts", nargs="*", type=Path, metavar="ARTIFACT.onnx")
    parser.add_argument(
        "--backend",
        default=",".join(DEFAULT_BACKENDS),
        metavar="B[,B…]",
        help=f"backends, compared in this order (default {','.join(DEFAULT_BACKENDS)}); 'ort-cpu,openvino' on this kind of machine",
    )
    parser.add_argument(
        "--batch-sizes",
        type=arguments.parse_batch_sizes,
        default=DEFAULT_BENCH_BATCH_SIZES,
        metavar="LIST",
        help=f"batch sizes, inside the artifact's profile (default {','.join(map(str, DEFAULT_BENCH_BATCH_SIZES))})",
    )
    default = Budget()
    parser.add_argument(
        "--warmup",
        type=float,
        default=default.warmup,
        metavar="S",
        help=f"warm-up seconds per batch size (default {default.warmup:g})",
    )
    how_long = parser.add_mutually_exclusive_group()
    how_long.add_argument(
        "--seconds",
        type=float,
        default=default.seconds,
        metavar="S",
        help=f"timed seconds per batch size, at least 3 calls (default {default.seconds:g})",
    )
    how_long.add_argument("--iters", type=int, metavar="N", help="exactly N timed calls per batch size instead")
    arguments.add_sizes_argument(parser, several=False)
    parser.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="CPU threads for onnxruntime, OpenVINO and torch (default: the physical cores)",
    )
    parser.add_argument(
        "--allow-fallback",
        action="store_true",
        help="run on the CPU when a GPU backend's provider is missing (the report says so)",
    )
    parser.add_argument(
        "--trt-fp16",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="ort-trt: let TensorRT build fp16 kernels (default on)",
    )
    parser.add_argument(
        "--trt-cache", type=Path, metavar="DIR", help="ort-trt: keep TensorRT engines in this folder between runs"
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="FILE.onnx",
        help="the batch-1 file an artifact replaces (e.g. det_2.5g.onnx), run at batch 1 on the same backends",
    )
    parser.add_argument(
        "--compare",
        type=Path,
        metavar="TABLE.yaml",
        help="a published table to set the results beside: a YAML file, or a shipped one by name (alonsorobots_rtx5090)",
    )
    arguments.add_frames_arguments(parser, "the benchmark")
    parser.add_argument(
        "--json",
        type=Path,
        metavar="FILE",
        help="write the report with every raw sample as JSON ('-': standard output)",
    )
    parser.add_argument(
        "--markdown",
        type=Path,
        metavar="FILE",
        help="write the report as Markdown, model-card tables ('-': standard output)",
    )
    parser.add_argument(
        "--plot", type=Path, metavar="FILE.png", help="write FPS and ms/frame against batch size, a line per backend"
    )
    arguments.add_embedder_arguments(parser)
    pipeline = parser.add_argument_group(
        "the face pipeline (--pipeline DIR): photos/s and faces/s against the per-image loop and insightface"
    )
    pipeline.add_argument(
        "--pipeline",
        type=Path,
        metavar="DIR",
        help="time detect → align → embed over these photos instead of models alone (one backend)",
    )
    pipeline.add_argument(
        "--detector",
        type=Path,
        metavar="ONNX",
        help="the SCRFD detector (default: the first with real weights in build/onnx)",
    )
    pipeline.add_argument(
        "--embedder",
        type=Path,
        metavar="ONNX|SPEC.yaml",
        help="the embedder (default: the first with real weights in build/onnx)",
    )
    pipeline.add_argument(
        "--detect-batch",
        type=arguments.parse_batch_size,
        default=DEFAULT_DETECT_BATCH,
        metavar="N",
        help=f"photos per detector call (default {DEFAULT_DETECT_BATCH})",
    )
    pipeline.add_argument(
        "--embed-batch",
        type=arguments.parse_batch_size,
        default=DEFAULT_EMBED_BATCH,
        metavar="N",
        help=f"faces per embedder call (default {DEFAULT_EMBED_BATCH})",
    )
    pipeline.add_argument(
        "--workers",
        type=int,
        default=DEFAULT_READ_WORKERS,
        metavar="N",
        help=f"reader threads (default {DEFAULT_READ_WORKERS})",
    )
    arguments.add_lanes_argument(pipeline)
    arguments.add_precision_argument(pipeline, bf16=True)
    pipeline.add_argument(
        "--reduced-decode",
        action="store_true",
        help="decode large JPEGs reduced for the detector (see 'facebatch embed --help'); insightface's agreement "
        "is then shown, not judged, and the hand-labelled faces found are",
    )
    pipeline.add_argument(
        "--process-runs",
        type=int,
        default=DEFAULT_PROCESS_RUNS,
        metavar="N",
        help="time 'facebatch embed' and an insightface script as fresh processes, start-up included, over the "
        f"folder and its first photo, N times each (default {DEFAULT_PROCESS_RUNS}; 0: not)",
    )
    pipeline.add_argument(
        "--rounds",
        type=int,
        default=DEFAULT_PIPELINE_ROUNDS,
        metavar="N",
        help=f"timed passes over the folder per run, the runs taking turns (default {DEFAULT_PIPELINE_ROUNDS})",
    )
    pipeline.add_argument(
        "--insightface",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run insightface's FaceAnalysis on the same files too (default: when it is installed)",
    )
    served = parser.add_argument_group(
        "a served model (--triton URL --model NAME): client-side throughput and latency per concurrency"
    )
    served.add_argument(
        "--triton",
        metavar="URL",
        help="a running Triton server: host:port (HTTP), http://host:port or grpc://host:port",
    )
    served.add_argument("--model", metavar="NAME", help="the served model to time, e.g. face_pipeline")
    served.add_argument(
        "--concurrency",
        type=arguments.parse_batch_sizes,
        default=DEFAULT_CONCURRENCY,
        metavar="LIST",
        help=f"client threads per level, each sending requests back to back (default {','.join(map(str, DEFAULT_CONCURRENCY))})",
    )
    served.add_argument(
        "--request-batch",
        type=arguments.parse_batch_size,
        default=DEFAULT_REQUEST_BATCH,
        metavar="N",
        help=f"photos or frames per request (default {DEFAULT_REQUEST_BATCH}; Triton's batcher merges requests)",
    )
    parser.set_defaults(handler=run, junit=None, field_flags=FIELD_FLAGS)


def bench_options(args: argparse.Namespace) -> BenchOptions:
    """The flags as the library's options (the defaults are the library's: the flags' defaults are read from it)."""
    from facebatch.workflows.bench import BenchOptions

    described = arguments.embedder_description(args, None)[0] if arguments.embedder_flags_given(args) else None
    return BenchOptions(
        models=tuple(args.artifacts),
        pipeline=args.pipeline,
        triton=args.triton,
        triton_model=args.model,
        backends=tuple(args.backend.split(",")),
        batch_sizes=args.batch_sizes,
        warmup=args.warmup,
        seconds=args.seconds,
        iters=args.iters,
        size=args.size,
        threads=args.threads,
        allow_fallback=args.allow_fallback,
        trt_fp16=args.trt_fp16,
        trt_cache=args.trt_cache,
        photos=() if args.images is None else (args.images,),
        seed=args.seed,
        baseline=args.baseline,
        published=args.compare,
        plot=args.plot,
        embedder_spec=args.embedder_spec,
        embedder_description=described,
        detector=args.detector,
        embedder=args.embedder,
        detect_batch=args.detect_batch,
        embed_batch=args.embed_batch,
        workers=args.workers,
        lanes=args.lanes,
        precision=args.precision,
        reduced_decode=args.reduced_decode,
        process_runs=args.process_runs,
        rounds=args.rounds,
        insightface=args.insightface,
        concurrency=tuple(args.concurrency),
        request_batch=args.request_batch,
        command=arguments.command_line(args),
    )


def run(args: argparse.Namespace) -> int:
    from facebatch.cli.render import show_bench, show_pipeline_bench, show_triton_bench
    from facebatch.engines.bench.pipeline_report import PipelineBenchReport
    from facebatch.engines.bench.triton_report import TritonBenchReport
    from facebatch.workflows.bench import bench

    arguments.check_report_targets(args)
    result = bench(bench_options(args))
    console = console_for(args)
    if isinstance(result, PipelineBenchReport):
        show_pipeline_bench(console, result)
    elif isinstance(result, TritonBenchReport):
        show_triton_bench(console, result)
    else:
        show_bench(console, result)
    write_reports(console, args, result)
    if args.plot is not None:
        console.print(f"wrote {args.plot}")
    if isinstance(result, PipelineBenchReport) and not result.passed:
        print("facebatch: error: the runs did not find the same faces (see above)", file=sys.stderr)
        return 1
    return 0
