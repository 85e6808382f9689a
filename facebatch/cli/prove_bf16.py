"""``facebatch prove-bf16``: a model in BF16 against FP32 on OpenVINO, on photos; the verdict is recorded beside it."""

from __future__ import annotations

import argparse
from pathlib import Path

from facebatch.cli import arguments
from facebatch.cli.render import console_for, write_reports


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "prove-bf16",
        help="prove a detector or embedder in BF16 on OpenVINO (what --precision bf16 needs), on photos",
        description="Run an FP32 detector or embedder on OpenVINO in FP32 and in BF16 (INFERENCE_PRECISION_HINT bf16) "
        "on the same photos and judge BF16 against FP32: detectors by their decoded faces (every FP32 face matched at "
        "IoU >= 0.95, landmarks within 2 px, no hand-labelled face lost), embedders by every aligned face's cosine to "
        "its FP32 embedding (>= 0.999) and the ordering of same- and different-person pairs. The verdict, pass or "
        "fail, with the figures, the model's sha256, the CPU and OpenVINO's version, is written to MODEL.bf16.json "
        "beside the model; the pipeline's --precision bf16 runs a model only where it passed on this CPU class. "
        "Refused on a CPU whose OpenVINO capabilities lack BF16. Exit 1 when the proof fails.",
    )
    parser.add_argument("model_file", type=Path, metavar="MODEL.onnx")
    parser.add_argument(
        "--images", type=Path, metavar="PATH", required=True, help="a photo or a folder of photos that show faces"
    )
    parser.add_argument(
        "--detector", type=Path, metavar="DET.onnx", help="embedders: the detector that finds the faces to embed"
    )
    parser.add_argument("--threads", type=int, metavar="N", help="OpenVINO's threads (default: the physical cores)")
    arguments.add_sizes_argument(parser, several=False)
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the verdict as JSON ('-': standard output)")
    parser.add_argument("--markdown", type=Path, metavar="FILE", help="write it as Markdown ('-': standard output)")
    arguments.add_embedder_arguments(parser)
    parser.set_defaults(handler=run, junit=None, field_flags={"photos": "--images"})


def run(args: argparse.Namespace) -> int:
    from facebatch.workflows.bf16_proof import Bf16ProofOptions, prove_bf16

    embedder = arguments.embedder_description(args, None)[0] if arguments.embedder_flags_given(args) else None
    options = Bf16ProofOptions(
        photos=arguments.photos(args), detector=args.detector, size=args.size, embedder=embedder, threads=args.threads
    )
    result = prove_bf16(args.model_file, options)
    console = console_for(args)
    for line in result.lines():
        console.print(line)
    write_reports(console, args, result)
    refusal = result.refusal()
    if refusal is not None:
        raise refusal
    return 0
