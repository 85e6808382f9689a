"""``facebatch export``: rebuild an SCRFD detector or ArcFace embedder in PyTorch and write a
batch-safe, proven ONNX artifact."""

from __future__ import annotations

import argparse
from pathlib import Path

from facebatch.cli import arguments
from facebatch.cli.render import console_for, show_export
from facebatch.configs.arcface import ARCFACE_INPUT_SIZE
from facebatch.configs.scrfd import DEFAULT_SCRFD_SIZE
from facebatch.exporter.defaults import DEFAULT_OPSET, DEFAULT_OUT_DIR, PARITY_BATCH_SIZES


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "export",
        help="rebuild an SCRFD detector or ArcFace embedder in PyTorch and export a batch-safe ONNX",
        description="Rebuild an SCRFD detector or an ArcFace embedder in PyTorch, load its weights, export "
        "ONNX with a symbolic batch axis, simplify it, prove parity with the torch model at several batch "
        "sizes, and write the .onnx with a sidecar .json. Without --weights the weights are seeded random "
        "(for verification and benchmarking only) and the file name says '_seeded'.",
    )
    parser.add_argument(
        "model",
        nargs="?",
        help="e.g. scrfd_10g_bnkps, arcface_r50 or r50 (see 'facebatch models'); "
        "optional with ONNX --weights (inferred) or --config",
    )
    parser.add_argument(
        "--size",
        type=arguments.parse_size,
        metavar="N|HxW",
        help=f"SCRFD input size, multiples of 32 (default {DEFAULT_SCRFD_SIZE}); ArcFace is always {ARCFACE_INPUT_SIZE}",
    )
    parser.add_argument(
        "--dynamic-size",
        action="store_true",
        help="make height and width symbolic too (parity is still checked at --size)",
    )
    parser.add_argument(
        "--weights",
        type=Path,
        metavar="FILE",
        help="SCRFD: mmdet .pth checkpoint or SCRFD ONNX (official model-pack layout or a "
        "batch-keeping re-export); ArcFace: arcface_torch backbone.pth or a recognition ONNX "
        "(w600k_r50.onnx, w600k_mbf.onnx, glintr100.onnx). .pth files load with weights_only",
    )
    arguments.add_embedding_size_argument(parser)
    parser.add_argument(
        "--config", type=Path, metavar="FILE.py", help="insightface SCRFD config file, for custom-trained detectors"
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT_DIR, metavar="DIR", help=f"output directory (default {DEFAULT_OUT_DIR})"
    )
    parser.add_argument(
        "--name",
        metavar="FILE.onnx",
        help="output file name (default e.g. scrfd_10g_320_batch.onnx, arcface_w600k_r50_batch.onnx; "
        "seeded weights: scrfd_10g_320_seeded_batch.onnx)",
    )
    parser.add_argument(
        "--opset",
        type=arguments.parse_opset,
        default=DEFAULT_OPSET,
        metavar="N",
        help=f"ONNX opset, {arguments.OPSET_HELP} (default {DEFAULT_OPSET})",
    )
    parser.add_argument(
        "--parity-batch-sizes",
        type=arguments.parse_batch_sizes,
        default=PARITY_BATCH_SIZES,
        metavar="LIST",
        help=f"batch sizes of the torch-vs-onnxruntime parity check (default {','.join(map(str, PARITY_BATCH_SIZES))})",
    )
    arguments.add_frames_arguments(parser, "the parity and import proofs")
    parser.set_defaults(handler=run, field_flags={"photos": "--images", "out_dir": "--out"})


def run(args: argparse.Namespace) -> int:
    from facebatch.workflows.export import ExportOptions, export

    options = ExportOptions(
        model=args.model,
        weights=args.weights,
        config=args.config,
        size=args.size,
        dynamic_size=args.dynamic_size,
        embedding_size=args.embedding_size,
        out_dir=args.out,
        name=args.name,
        opset=args.opset,
        parity_batch_sizes=args.parity_batch_sizes,
        photos=[] if args.images is None else [args.images],
        seed=args.seed,
    )
    show_export(console_for(args), export(options))
    return 0
