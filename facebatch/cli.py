"""``facebatch`` command line. Library errors become one line on stderr and a non-zero exit:
2 for bad input (files, names, sizes, weights), 1 when a check or export proof fails."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from facebatch import __version__
from facebatch.errors import FacebatchError, SpecError

out = Console(highlight=False)


def parse_size(text: str) -> tuple[int, int]:
    """'320' → (320, 320); '480x640' → (480, 640) as height x width."""
    try:
        parts = [int(p) for p in text.lower().split("x")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r} is not N or HxW (e.g. 320 or 480x640)") from None
    if len(parts) == 1:
        return parts[0], parts[0]
    if len(parts) == 2:
        return parts[0], parts[1]
    raise argparse.ArgumentTypeError(f"size {text!r} is not N or HxW (e.g. 320 or 480x640)")


def parse_batch_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"batch sizes {text!r} are not comma-separated integers") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("batch sizes must be positive integers, e.g. 1,2,7,32")
    return sizes


def _photos(directory: Path | None) -> list[Path]:
    if directory is None:
        return []
    from facebatch.engines.preprocess import image_files

    photos = image_files(directory)
    if not photos:
        raise SpecError(f"--images {directory} holds no .jpg/.png files")
    return photos


def cmd_export(args: argparse.Namespace) -> int:
    from facebatch.exporter.scrfd_export import ScrfdExportRequest, export_scrfd

    height, width = args.size
    request = ScrfdExportRequest(
        variant=args.model,
        config=args.config,
        height=height,
        width=width,
        dynamic_size=args.dynamic_size,
        weights=args.weights,
        out_dir=args.out,
        name=args.name,
        opset=args.opset,
        parity_batch_sizes=args.parity_batch_sizes,
        photos=_photos(args.images),
        seed=args.seed,
    )
    if request.variant is None and request.config is None and request.weights is None:
        raise SpecError("name a model (see 'facebatch models'), or pass --config FILE.py or ONNX --weights")
    result = export_scrfd(request)

    table = Table(title=f"exported {result.spec.name}", show_header=False, title_justify="left")
    table.add_row("artifact", str(result.onnx_path))
    table.add_row("sidecar", str(result.sidecar_path))
    table.add_row("input", f"{result.spec.input.name} {list(result.spec.input.dims)}")
    table.add_row("outputs", ", ".join(f"{t.name} {list(t.dims)}" for t in result.spec.outputs))
    table.add_row("weights", result.weights.describe())
    if result.weights.proof is not None:
        table.add_row("import proof", result.weights.proof.summary())
    gate = f"≤ {result.parity_atol:.3g} (seeded)" if result.parity_atol else "≤ spec atol 1e-4"
    table.add_row(f"parity torch vs ORT {gate}", "; ".join(f"{r.label}: {r.max_abs_diff:.2e}" for r in result.parity))
    out.print(table)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from facebatch.configs.scrfd import SCRFD_CONFIGS, HeadLayout
    from facebatch.exporter.scrfd import build_scrfd

    table = Table(title="SCRFD variants (insightface configs/scrfd)")
    for column in ("variant", "backbone", "head norm", "landmarks", "params"):
        table.add_column(column)
    for name, cfg in SCRFD_CONFIGS.items():
        params = sum(p.numel() for p in build_scrfd(**cfg).parameters())
        head = cfg["bbox_head"]
        table.add_row(
            name,
            cfg["backbone"]["type"],
            head["norm_cfg"]["type"],
            "yes" if HeadLayout.from_config(cfg).use_kps else "no",
            f"{params / 1e6:.3f}M",
        )
    out.print(table)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="facebatch",
        description="Batch-safe ONNX re-exports of InsightFace SCRFD face detectors, proven before they are written.",
    )
    parser.add_argument("--version", action="version", version=f"facebatch {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    export = commands.add_parser(
        "export",
        help="rebuild an SCRFD detector in PyTorch and export a batch-safe ONNX",
        description="Rebuild an SCRFD detector in PyTorch, load its weights, export ONNX with a symbolic "
        "batch axis, simplify it, prove parity with the torch model at several batch sizes, and write "
        "the .onnx with a sidecar .json. Without --weights the weights are seeded random (for "
        "verification and benchmarking only).",
    )
    export.add_argument("model", nargs="?", help="variant, e.g. scrfd_10g_bnkps (see 'facebatch models'); "
                        "optional with ONNX --weights (inferred) or --config")  # fmt: skip
    export.add_argument("--size", type=parse_size, default=(320, 320), metavar="N|HxW",
                        help="input size, multiples of 32 (default 320)")  # fmt: skip
    export.add_argument("--dynamic-size", action="store_true",
                        help="make height and width symbolic too (parity is still checked at --size)")  # fmt: skip
    export.add_argument("--weights", type=Path, metavar="FILE",
                        help="mmdet .pth checkpoint (weights_only) or an SCRFD ONNX file (official model-pack "
                        "layout or a batch-keeping re-export)")  # fmt: skip
    export.add_argument("--config", type=Path, metavar="FILE.py",
                        help="insightface SCRFD config file, for custom-trained detectors")  # fmt: skip
    export.add_argument("--out", type=Path, default=Path("build/onnx"), metavar="DIR",
                        help="output directory (default build/onnx)")  # fmt: skip
    export.add_argument("--name", metavar="FILE.onnx", help="output file name (default e.g. scrfd_10g_320_batch.onnx)")
    export.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    export.add_argument("--images", type=Path, metavar="DIR",
                        help="photos for the parity and import proofs (seeded noise frames fill the rest)")  # fmt: skip
    export.add_argument("--parity-batch-sizes", type=parse_batch_sizes, default=(1, 2, 7, 32), metavar="LIST",
                        help="batch sizes of the torch-vs-onnxruntime parity check (default 1,2,7,32)")  # fmt: skip
    export.add_argument("--seed", type=int, default=0, help="seed for random weights and noise frames (default 0)")
    export.set_defaults(handler=cmd_export)

    models = commands.add_parser("models", help="list the SCRFD variants", description="List the SCRFD variants.")
    models.set_defaults(handler=cmd_models)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except FacebatchError as exc:
        print(f"facebatch: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("facebatch: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
