"""``facebatch fix``: repair a batch-1 graph by surgery, prove it, then verify it against
the original."""

from __future__ import annotations

import argparse
from pathlib import Path

from facebatch.cli import arguments
from facebatch.cli.render import console_for


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
    parser.add_argument("-o", "--out", dest="out", type=Path, required=True, metavar="OUT.onnx")
    arguments.add_sizes_argument(parser, several=True)
    arguments.add_verify_run_arguments(parser)
    parser.set_defaults(handler=run, field_flags={"photos": "--images", "size": "--size"})


def run(args: argparse.Namespace) -> int:
    from facebatch.cli.render import show_verify, write_reports
    from facebatch.workflows.fix import FixOptions, fix_model

    arguments.check_report_targets(args, arguments.input_files(args, [args.out]))
    options = FixOptions(
        sizes=args.sizes,
        batch_sizes=args.batch_sizes,
        photos=arguments.photos(args),
        seed=args.seed,
        det_thresh=args.det_thresh,
        nms_thresh=args.nms_thresh,
        strict=args.strict,
    )
    result = fix_model(args.model_file, args.out, options)
    console = console_for(args)
    for line in result.lines():
        console.print(line)
    if result.verify is not None:  # the reports are the written file's verify report
        result.verify.command = arguments.command_line(args)
        show_verify(console, result.verify)
        write_reports(console, args, result.verify)
    refusal = result.refusal()
    if refusal is not None:
        raise refusal
    return 0
