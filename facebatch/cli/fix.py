"""``facebatch fix``: repair a batch-1 graph by surgery, prove it, then verify it against
the original."""

from __future__ import annotations

import argparse
from pathlib import Path

from facebatch.cli import arguments
from facebatch.cli.render import console_for
from facebatch.cli.verify import finish


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "fix",
        help="repair an official batch-1 SCRFD or recognition ONNX into a batch-keeping one, then verify it",
        description="Graph surgery without PyTorch: the official SCRFD head (Transpose perm [2,3,0,1] → Reshape "
        "[-1,K]) keeps the batch, Reshape constants that fix dim 0 to 1 copy it instead, Resize sizes, Concat-built "
        "Reshape shapes and Expand/ConstantOfShape/Tile outputs joined with the frames take dim 0 from the data, the "
        "input batch becomes symbolic, SCRFD outputs are renamed score_8 … kps_32. The repair is proven (each frame's "
        "outputs equal the original's single-frame outputs), written atomically with a record (metadata and a sidecar "
        ".json: source sha256, every repair, the proof), then verified like 'facebatch verify' with the original as the "
        "check-4 reference. What surgery cannot repair is refused naming the node; a file with nothing to repair is "
        "left alone (exit 0).",
    )
    parser.add_argument("model_file", type=Path, metavar="MODEL.onnx")
    parser.add_argument("-o", "--out", dest="output_file", type=Path, required=True, metavar="OUT.onnx")
    arguments.add_sizes_argument(parser, several=True)
    arguments.add_verify_run_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from facebatch.core.atomic import check_output_file
    from facebatch.core.progress import step
    from facebatch.verify.reference import onnx_reference
    from facebatch.verify.verify_job import VerifyOptions, verify_model
    from facebatch.workflows.fix import REPAIR_ATOL, fix_onnx

    check_output_file(args.output_file, "-o", [args.model_file])  # before the step line: refused, not started
    arguments.check_report_targets(args, arguments.input_files(args, [args.output_file]))
    console = console_for(args)
    proof_size = args.sizes[0] if args.sizes else None
    with step(f"repair {args.model_file.name} by graph surgery and prove it frame by frame"):
        result = fix_onnx(args.model_file, args.output_file, size=proof_size)
    if not result.written:
        console.print(
            f"nothing to fix: {args.model_file.name} carries a symbolic batch on every input and output and the lint "
            f"finds nothing that folds, moves or pins it; nothing was written (verify it with 'facebatch verify')"
        )
        return 0
    for change in result.changes:
        console.print(f"fixed: {change}")
    if result.renamed:
        console.print("renamed outputs: " + ", ".join(f"{a} → {b}" for a, b in result.renamed.items()))
    console.print(
        f"proof: repaired per-frame outputs vs original single-frame outputs, max abs diff "
        f"{result.proof_max_diff:.3g} (≤ {REPAIR_ATOL:g})"
    )
    console.print(f"wrote {result.path} and {result.sidecar.name} (the source's sha256, every repair, the proof)")
    options = VerifyOptions(
        batch_sizes=args.batch_sizes,
        photos=arguments.photos(args),
        seed=args.seed,
        sizes=args.sizes,
        reference=onnx_reference(args.model_file, one_frame_at_a_time=True),
        det_thresh=args.det_thresh,
        nms_thresh=args.nms_thresh,
        strict=args.strict,
    )
    finish(console, args, verify_model(result.path, options))
    return 0
