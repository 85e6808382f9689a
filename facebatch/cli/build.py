"""``facebatch build``: a TensorRT engine (.plan + sidecar) with the spec's batch profile,
compared with the FP32 ONNX before it is written."""

from __future__ import annotations

import argparse
from pathlib import Path

from facebatch.cli import arguments
from facebatch.cli.render import console_for


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "build",
        help="build a TensorRT engine (.plan) with a batch profile 1-32, compared with the FP32 ONNX before it is written",
        description="Build a TensorRT engine through Polygraphy's TensorRT backend: TensorRT 10 builds the FP32 ONNX with "
        "the FP16 flag, TensorRT 11 and later the verified FP16 ONNX ('facebatch convert --fp16', made when missing) as a "
        "strongly typed network. One optimisation profile over the batch (default the spec's min/opt/max 1/16/32). The "
        "engine is run at batch min, opt and max against the FP32 ONNX on onnxruntime and checked frame by frame; only "
        "then are build/engines/NAME_fp16_b1-32.plan (a plain plan, as trtexec and Triton load it) and its sidecar .json "
        "written. Without TensorRT: exit 2, and 'facebatch convert --fp16' works on any machine.",
    )
    parser.add_argument("model_file", type=Path, metavar="MODEL.onnx")
    parser.add_argument("--precision", choices=("fp16", "fp32"), default="fp16", help="engine precision (default fp16)")
    parser.add_argument(
        "--min",
        dest="batch_min",
        type=arguments.parse_batch_size,
        metavar="N",
        help="smallest batch of the profile (default the spec's, 1)",
    )
    parser.add_argument(
        "--opt",
        dest="batch_opt",
        type=arguments.parse_batch_size,
        metavar="N",
        help="batch TensorRT tunes for (default the spec's, 16)",
    )
    parser.add_argument(
        "--max",
        dest="batch_max",
        type=arguments.parse_batch_size,
        metavar="N",
        help="largest batch of the profile (default the spec's, 32)",
    )
    parser.add_argument(
        "--workspace-gib", type=float, metavar="N", help="builder workspace limit in GiB (default TensorRT's)"
    )
    parser.add_argument(
        "--timing-cache",
        type=Path,
        metavar="FILE",
        help="TensorRT timing cache: read when present, updated after the build",
    )
    parser.add_argument(
        "-o",
        "--out",
        dest="out",
        type=Path,
        metavar="OUT.plan",
        help="engine file (default build/engines/NAME_PRECISION_bMIN-MAX.plan)",
    )
    arguments.add_sizes_argument(parser, several=False)
    arguments.add_frames_arguments(parser, "the comparison with the FP32 ONNX")
    parser.set_defaults(handler=run, field_flags={"photos": "--images"})


def run(args: argparse.Namespace) -> int:
    from facebatch.configs.precision import Precision
    from facebatch.engines.build.tensorrt_engine import BuilderOptions
    from facebatch.workflows.build import BuildOptions, build_engine_job

    options = BuildOptions(
        precision=Precision(args.precision),
        size=args.size,
        batch_min=args.batch_min,
        batch_opt=args.batch_opt,
        batch_max=args.batch_max,
        settings=BuilderOptions(args.workspace_gib, args.timing_cache),
        out=args.out,
        photos=arguments.photos(args),
        seed=args.seed,
    )
    result = build_engine_job(args.model_file, options)
    console = console_for(args)
    for line in result.lines():
        console.print(line)
    return 0
