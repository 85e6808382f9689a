"""``facebatch bench``: throughput per batch size of artifacts on backends, side by side,
with the file an artifact replaces and a published table beside them."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from facebatch.cli import arguments
from facebatch.cli.render import console_for, show_bench, write_reports
from facebatch.core.errors import SpecError
from facebatch.engines.bench.measure import Budget
from facebatch.engines.bench.settings import (
    DEFAULT_BACKENDS,
    DEFAULT_BENCH_BATCH_SIZES,
    DEFAULT_PIPELINE_ROUNDS,
    DEFAULT_PROCESS_RUNS,
)
from facebatch.engines.pipeline.settings import DEFAULT_DETECT_BATCH, DEFAULT_EMBED_BATCH, DEFAULT_READ_WORKERS
from facebatch.engines.runners.backends import BACKENDS
from facebatch.engines.triton.settings import DEFAULT_CONCURRENCY


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
    arguments.add_precision_argument(pipeline)
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
        default=1,
        metavar="N",
        help="photos or frames per request (default 1; Triton's batcher merges requests)",
    )
    parser.set_defaults(handler=run, junit=None)


def run(args: argparse.Namespace) -> int:
    from facebatch.configs.model_file import read_model_file
    from facebatch.core.atomic import check_output_file, write_bytes_atomic
    from facebatch.engines.bench.job import BenchOptions, bench_models
    from facebatch.engines.bench.published import load_published
    from facebatch.engines.runners.backends import parse_backends
    from facebatch.engines.runners.registry import RunnerOptions
    from facebatch.exporter.backends import make_runner

    arguments.check_report_targets(args)
    if args.triton is not None or args.model is not None:
        return run_triton(args)
    if args.pipeline is not None:
        return run_pipeline(args)
    if not args.artifacts:
        raise SpecError("name the artifacts to benchmark, or --pipeline DIR to time the face pipeline over photos")
    if args.plot is not None:
        check_output_file(args.plot, "--plot", arguments.input_files(args))
    backends = parse_backends(args.backend)
    embedder = arguments.embedder_description(args, None)[0] if arguments.embedder_flags_given(args) else None
    models = [read_model_file(path, embedder, args.size) for path in args.artifacts]
    runner = RunnerOptions(
        threads=args.threads, allow_fallback=args.allow_fallback, trt_fp16=args.trt_fp16, trt_cache=args.trt_cache
    )
    options = BenchOptions(
        backends=backends,
        batch_sizes=args.batch_sizes,
        budget=Budget(args.warmup, args.seconds, args.iters),
        size=args.size,
        photos=arguments.photos(args),
        seed=args.seed,
        runner=runner,
        baseline=args.baseline,
        published=load_published(args.compare) if args.compare is not None else None,
    )
    report = bench_models(models, options, make_runner)
    report.command = arguments.command_line(args)
    console = console_for(args)
    show_bench(console, report)
    write_reports(console, args, report)
    if args.plot is not None:
        from facebatch.engines.bench.plot import plot_png

        write_bytes_atomic(args.plot, plot_png(report), "--plot")
        console.print(f"wrote {args.plot}")
    return 0


def run_pipeline(args: argparse.Namespace) -> int:
    from facebatch.cli.render import show_pipeline_bench
    from facebatch.engines.bench.pipeline_bench import PipelineBenchOptions, bench_pipeline
    from facebatch.engines.pipeline.face_pipeline import PipelineSettings
    from facebatch.engines.pipeline.preprocess import collect_images
    from facebatch.engines.runners.backends import parse_backends
    from facebatch.engines.runners.registry import RunnerOptions

    if args.artifacts:
        raise SpecError(
            "--pipeline times the detector and embedder it is given (--detector, --embedder); drop the artifact arguments"
        )
    backends = parse_backends(args.backend)
    if len(backends) != 1 or args.plot is not None:
        raise SpecError("--pipeline runs on one --backend and draws no --plot")
    if args.process_runs < 0:
        raise SpecError("--process-runs must be 0 or more")
    paths = collect_images([args.pipeline])
    args.embedder_spec = getattr(args, "embedder_spec", None)
    given = arguments.pipeline_models(args, embed=True, precision="fp32")  # what insightface runs
    assert given[1] is not None
    detector = arguments.with_precision(given[0], "--detector", args.precision, args.size)
    embedder = arguments.with_precision(given[1], "--embedder", args.precision, None)
    settings = PipelineSettings(
        batch_size=args.detect_batch,
        embed_batch_size=args.embed_batch,
        read_workers=args.workers,
        reduced_decode=args.reduced_decode,
        lanes=args.lanes,
    )
    options = PipelineBenchOptions(
        backend=backends[0],
        settings=settings,
        rounds=args.rounds,
        insightface=args.insightface,
        runner=RunnerOptions(threads=args.threads, allow_fallback=args.allow_fallback, spin_wait=False),
        detector_size=args.size,
        peer_detector=fp32_source(given[0]),
        peer_embedder=fp32_source(given[1]),
        process_repeats=args.process_runs,
        process_flags=embed_flags(args, detector.path, embedder.path),
    )
    report = bench_pipeline(detector, embedder, paths, options)
    report.command = arguments.command_line(args)
    console = console_for(args)
    show_pipeline_bench(console, report)
    write_reports(console, args, report)
    if not report.passed:
        print("facebatch: error: the runs did not find the same faces (see above)", file=sys.stderr)
        return 1
    return 0


def fp32_source(model) -> Path:  # ModelFile → the file insightface runs: an INT8 file's FP32 source
    return model.source_file() if model.precision == "int8" else model.path


def embed_flags(args: argparse.Namespace, detector: Path, embedder: Path) -> tuple[str, ...]:
    """``facebatch embed``'s flags for the same run as this bench (the whole-process timing)."""
    from facebatch.configs.embedder import read_embedder_file

    described = args.embedder is not None and args.embedder.suffix.lower() in (".yaml", ".yml")
    if described and read_embedder_file(args.embedder)[0].resolve() == embedder.resolve():
        embedder = args.embedder  # the spec file, which says how to run its ONNX
    flags = ["--detector", str(detector), "--embedder", str(embedder), "--backend", args.backend]
    flags += ["--batch-size", str(args.detect_batch), "--embed-batch-size", str(args.embed_batch)]
    flags += ["--workers", str(args.workers)]
    if args.threads is not None:
        flags += ["--threads", str(args.threads)]
    if args.lanes is not None:
        flags += ["--lanes", str(args.lanes)]
    if args.size is not None:
        flags += ["--size", f"{args.size[0]}x{args.size[1]}"]
    if args.embedder_spec is not None:
        flags += ["--embedder-spec", str(args.embedder_spec)]
    return tuple(flags + (["--reduced-decode"] if args.reduced_decode else []))


def run_triton(args: argparse.Namespace) -> int:
    from facebatch.cli.render import show_triton_bench
    from facebatch.engines.bench.triton_bench import LocalPipelineOptions, TritonBenchOptions, bench_triton
    from facebatch.engines.pipeline.face_pipeline import PipelineSettings
    from facebatch.engines.runners.backends import parse_backends

    if args.triton is None or args.model is None:
        raise SpecError("--triton URL and --model NAME go together: the server and the model on it to time")
    if args.artifacts or args.pipeline is not None or args.plot is not None:
        raise SpecError("--triton times a served model; drop the artifact arguments, --pipeline and --plot")
    options = TritonBenchOptions(
        url=args.triton,
        model=args.model,
        concurrency=tuple(args.concurrency),
        request_batch=args.request_batch,
        budget=Budget(args.warmup, args.seconds),
        photos=tuple(arguments.photos(args)),
        seed=args.seed,
    )
    local = None
    if (
        args.detector is not None or args.embedder is not None
    ):  # the same photos through the local pipeline, for the ratio
        backends = parse_backends(args.backend)
        args.embedder_spec = getattr(args, "embedder_spec", None)
        detector, embedder = arguments.pipeline_models(args, embed=True)
        assert embedder is not None
        local = LocalPipelineOptions(
            detector,
            embedder,
            backends[0],
            PipelineSettings(
                batch_size=args.detect_batch,
                embed_batch_size=args.embed_batch,
                read_workers=args.workers,
                lanes=args.lanes,
            ),
            arguments.runner_options(args),
            rounds=args.rounds,
        )
    report = bench_triton(options, local)
    report.command = arguments.command_line(args)
    console = console_for(args)
    show_triton_bench(console, report)
    write_reports(console, args, report)
    return 0
