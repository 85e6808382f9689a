"""``facebatch verify``: the release gate for any SCRFD detector or face embedder ONNX."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from facebatch.cli import arguments
from facebatch.cli.render import console_for, show_verify
from facebatch.verify.independence import INDEPENDENCE_ATOL


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "verify",
        help="prove an SCRFD or embedder ONNX keeps frames independent (the release gate)",
        description="Verify any SCRFD detector or face embedder ONNX, ours or someone else's: (1) batch "
        f"independence on distinct frames at every --batch-sizes (max abs diff < {INDEPENDENCE_ATOL:g}), "
        "(2) layout of every output and axis, (3) SCRFD: each frame's decoded faces (decode + NMS) alone equal those "
        "inside a batch, (4) parity with --reference (torch or another ONNX) within the spec's tolerances, (5) the first "
        "node that mixes or folds frames when (1) or (3) fails, (6) a static lint of Reshape/Transpose/Flatten/reductions. "
        "Exit 0 only when every check passes (with --strict: and none was skipped), 1 when one fails, 2 for bad input.",
    )
    parser.add_argument("model_file", type=Path, metavar="MODEL.onnx")
    arguments.add_sizes_argument(parser, several=True)
    arguments.add_verify_run_arguments(parser)
    arguments.add_reference_arguments(parser)
    arguments.add_embedder_arguments(parser)
    parser.set_defaults(handler=run, field_flags={"photos": "--images", "size": "--size"})


def options_from(args: argparse.Namespace):  # VerifyModelOptions
    """The flags as the use case's options (a report going to standard output is the CLI's to print)."""
    from facebatch.workflows.verify import VerifyModelOptions

    values = arguments.embedder_values(args, None)
    return VerifyModelOptions(
        model=args.model_file,
        batch_sizes=args.batch_sizes,
        sizes=args.sizes,
        photos=[] if args.images is None else [args.images],
        seed=args.seed,
        reference=args.reference,
        reference_weights=args.reference_weights,
        reference_config=args.reference_config,
        embedder_spec=args.embedder_spec,
        embedder_values={key: value for key, value in values.items() if value is not None},
        det_thresh=args.det_thresh,
        nms_thresh=args.nms_thresh,
        strict=args.strict,
        json=_file(args.json),
        markdown=_file(args.markdown),
        junit=_file(args.junit),
        command=arguments.command_line(args),
    )


def _file(target: Path | None) -> Path | None:
    return None if target == arguments.STDOUT else target


def run(args: argparse.Namespace) -> int:
    from facebatch.cli.terminal import literal
    from facebatch.configs.model_file import REPAIRABLE, repaired_name
    from facebatch.workflows.verify import verify

    report = verify(options_from(args))
    console = console_for(args)
    show_verify(console, report)
    for target, render in (
        (args.json, report.to_json),
        (args.markdown, report.to_markdown),
        (args.junit, report.to_junit),
    ):
        if target == arguments.STDOUT:
            sys.stdout.write(render())
            sys.stdout.flush()
        elif target is not None:
            console.print(f"wrote {target}")
    if any(note.startswith(REPAIRABLE) for note in report.notes):  # the repair, as a command that runs as printed
        fix = shlex.join(["facebatch", "fix", str(args.model_file), "-o", repaired_name(args.model_file)])
        console.print(f"repair: {literal(fix)}", soft_wrap=True)
    refusal = report.refusal()
    if refusal is not None:
        raise refusal
    return 0
