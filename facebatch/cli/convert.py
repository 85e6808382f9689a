"""``facebatch convert --fp16``: the FP16 ONNX of an artifact, verified before it is written."""

from __future__ import annotations

import argparse
from pathlib import Path

from facebatch.cli import arguments
from facebatch.cli.render import console_for, show_verify, write_reports
from facebatch.configs.precision import FP16_INDEPENDENCE_ATOL


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "convert",
        help="convert an artifact to FP16 ONNX (what TensorRT 11 and onnxruntime CUDA users run), proven before it is written",
        description="Convert an FP32 detector or embedder ONNX to FP16 with onnxconverter-common (inputs and outputs stay "
        "FP32 unless --fp16-io; its default op block list stays FP32), keep the batch axis symbolic, stamp the precision "
        "and the source's sha256 into the metadata, then verify the FP16 graph like 'facebatch verify --strict' with the "
        "source as reference at FP16 tolerances: raw outputs per role, the same decoded faces (IoU >= 0.95, scores "
        f"within 1e-2, landmarks within 1 px), embedding cosine >= 0.999, batch independence < {FP16_INDEPENDENCE_ATOL:g}. "
        "Only a passing graph is written (atomically, with a sidecar .json). Exit 1 when the gate fails.",
    )
    parser.add_argument("model_file", type=Path, metavar="MODEL.onnx")
    parser.add_argument(
        "--fp16", action="store_true", required=True, help="convert to FP16 (the one conversion; INT8 is 'quantize')"
    )
    parser.add_argument(
        "-o",
        "--out",
        dest="out",
        type=Path,
        metavar="OUT.onnx",
        help="the FP16 file (default: MODEL_fp16.onnx beside MODEL.onnx)",
    )
    parser.add_argument(
        "--fp16-io", action="store_true", help="FP16 inputs and outputs too (default off: FP32 at the edges)"
    )
    arguments.add_sizes_argument(parser, several=False)
    parser.add_argument(
        "--batch-sizes",
        type=arguments.parse_batch_sizes,
        default=arguments.DEFAULT_BATCH_SIZES,
        metavar="LIST",
        help="batch sizes the proof runs (default the verifier's)",
    )
    arguments.add_frames_arguments(parser, "the proof")
    arguments.add_report_arguments(parser)
    arguments.add_embedder_arguments(parser)
    parser.set_defaults(handler=run, field_flags={"photos": "--images"})


def run(args: argparse.Namespace) -> int:
    from facebatch.workflows.convert import ConvertOptions, convert_fp16, default_fp16_path

    artifact = args.out if args.out is not None else default_fp16_path(args.model_file)
    arguments.check_report_targets(args, written=[artifact, artifact.with_suffix(".json")])  # never over the result
    embedder = arguments.embedder_description(args, None)[0] if arguments.embedder_flags_given(args) else None
    options = ConvertOptions(
        fp16_io=args.fp16_io,
        photos=arguments.photos(args),
        batch_sizes=args.batch_sizes,
        seed=args.seed,
        size=args.size,
        embedder=embedder,
    )
    result = convert_fp16(args.model_file, args.out, options)
    console = console_for(args)
    result.report.command = arguments.command_line(args)
    show_verify(console, result.report)
    write_reports(console, args, result.report)  # the reports are the FP16 graph's verify report
    refusal = result.refusal()
    for line in result.lines():
        console.print(line)
    if refusal is not None:
        raise refusal
    return 0
