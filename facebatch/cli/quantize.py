"""``facebatch quantize``: the INT8 ONNX of an artifact for the CPU, with its accuracy against
FP32 and its speed-up measured in the same run."""

from __future__ import annotations

import argparse
from pathlib import Path

from facebatch.cli import arguments
from facebatch.configs.precision import INT8_MIN_COSINE
from facebatch.engines.build.int8_recipes import RECIPES, RECIPES_FOR_CPU
from facebatch.workflows.defaults import QUANTIZE_BENCH_BACKENDS, QUANTIZE_BENCH_BATCH_SIZES, QUANTIZE_BENCH_SECONDS

_CANDIDATES = "; ".join(f"{cpu} {' and '.join(names)}" for cpu, names in RECIPES_FOR_CPU.items())


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "quantize",
        help="quantise an artifact to INT8 ONNX for the CPU (onnxruntime, OpenVINO), gated by its accuracy against FP32",
        description="Quantise an FP32 detector or embedder ONNX with onnxruntime's static quantisation (QDQ; int8 weights, "
        "per channel by default; uint8 activations) calibrated on --images: letterboxed photos for detectors, the faces a "
        "detector finds in them, aligned, for embedders. The integer kernels differ by CPU class (VNNI or AVX2 alone), so "
        "the recipes suited to this one are each tried and the most accurate kept. The batch axis stays symbolic; the metadata says int8, the "
        "calibration set's hash and the source's sha256. The INT8 model is then compared with FP32 on the same photos "
        "(detectors: matched faces' IoU, landmark error, missed and extra faces, recall on hand-labelled faces; embedders: "
        f"cosine per face, >= {INT8_MIN_COSINE} by default, and the same/different-person ordering of pairs named "
        "NAME_1/NAME_2), and bench times FP32 and INT8 side by side on onnxruntime CPU and OpenVINO. With --mixed, an "
        "embedder that no recipe keeps within the gate gets a search: its layers, largest first, each kept in INT8 while "
        "the gate still passes, the others FP32. A model that fails the gate is not written (exit 1) unless --force.",
    )
    parser.add_argument("model_file", type=Path, metavar="MODEL.onnx")
    parser.add_argument(
        "--images", type=Path, required=True, metavar="PATH", help="photos to calibrate on and to judge accuracy with"
    )
    parser.add_argument(
        "-o",
        "--out",
        dest="out",
        type=Path,
        metavar="OUT.onnx",
        help="the INT8 file (default: MODEL_int8.onnx beside MODEL.onnx)",
    )
    parser.add_argument(
        "--per-channel",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="weights quantised per output channel (default on; --no-per-channel: one scale per tensor)",
    )
    parser.add_argument(
        "--recipe",
        dest="recipes",
        type=_recipes,
        default=(),
        metavar="NAME[,NAME…]",
        help=f"the recipes to try, the most accurate kept (of {', '.join(RECIPES)}; default: this CPU class's "
        f"candidates: {_CANDIDATES})",
    )
    parser.add_argument(
        "--max-drop",
        type=float,
        metavar="X",
        help="the accuracy drop allowed: detectors, the share of hand-labelled faces no longer found (default 0), "
        "or without labels of FP32's faces missed (default 0.05); embedders, 1 - the lowest cosine to FP32 "
        f"(default {1 - INT8_MIN_COSINE:g})",
    )
    parser.add_argument(
        "--mixed",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="embedders no recipe keeps within the gate: search the layers that can run in INT8, the others stay FP32 "
        "(default off: about 3 s a layer, 2.5 min for a MobileFaceNet; OpenVINO gains from it, onnxruntime little)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="write the INT8 file even when the accuracy gate fails (the report says so)",
    )
    parser.add_argument(
        "--detector",
        type=Path,
        metavar="ONNX",
        help="embedders: the detector that finds the faces to align (default: the first with real weights in build/onnx)",
    )
    parser.add_argument(
        "--bench",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="time FP32 and INT8 side by side (default on)",
    )
    parser.add_argument(
        "--backend",
        default=",".join(QUANTIZE_BENCH_BACKENDS),
        metavar="B[,B…]",
        help=f"backends bench times (default {','.join(QUANTIZE_BENCH_BACKENDS)})",
    )
    parser.add_argument(
        "--batch-sizes",
        type=arguments.parse_batch_sizes,
        default=QUANTIZE_BENCH_BATCH_SIZES,
        metavar="LIST",
        help=f"bench's batch sizes (default {','.join(map(str, QUANTIZE_BENCH_BATCH_SIZES))})",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=QUANTIZE_BENCH_SECONDS,
        metavar="S",
        help=f"bench's timed seconds per batch size (default {QUANTIZE_BENCH_SECONDS:g})",
    )
    parser.add_argument("--threads", type=int, metavar="N", help="CPU threads for bench (default: the physical cores)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the report as JSON ('-': standard output)")
    parser.add_argument(
        "--markdown", type=Path, metavar="FILE", help="write the report as Markdown ('-': standard output)"
    )
    parser.set_defaults(handler=run, junit=None, field_flags={"photos": "--images", "bench_backends": "--backend"})


def _recipes(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in RECIPES]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"expected recipes out of {', '.join(RECIPES)}, got {text!r}")
    return names


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from facebatch.cli.render import console_for, show_quantize, write_reports
    from facebatch.workflows.quantize import QuantizeOptions, default_int8_path, quantize_int8

    artifact = args.out if args.out is not None else default_int8_path(args.model_file)
    arguments.check_report_targets(args, written=[artifact, artifact.with_suffix(".json")])  # never over the result
    options = QuantizeOptions(
        photos=arguments.photos(args),
        per_channel=args.per_channel,
        recipes=args.recipes,
        max_drop=args.max_drop,
        force=args.force,
        detector=args.detector,
        bench=args.bench,
        bench_backends=args.backend,  # the options read the names
        bench_batch_sizes=args.batch_sizes,
        threads=args.threads,
        mixed=args.mixed,
    )
    options.budget = replace(options.budget, seconds=args.seconds)  # its warm-up stays the library's
    result = quantize_int8(args.model_file, options, args.out)
    result.command = arguments.command_line(args)
    console = console_for(args)
    show_quantize(console, result)
    write_reports(console, args, result)
    refusal = result.refusal()
    if refusal is not None:
        raise refusal
    console.print(f"wrote {result.path} and {result.sidecar.name}")
    return 0
