"""``facebatch verify``: the release gate for any SCRFD detector or face embedder ONNX."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from facebatch.cli import arguments
from facebatch.cli.render import console_for, show_verify, write_reports
from facebatch.verify.independence import INDEPENDENCE_ATOL

if TYPE_CHECKING:
    from rich.console import Console

    from facebatch.verify.report import VerifyReport


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
    parser.set_defaults(handler=run)


def finish(console: Console, args: argparse.Namespace, report: VerifyReport) -> None:
    """Show, write and judge a verify report (verify, and fix after its repair)."""
    from facebatch.core.errors import VerificationFailed

    report.command = arguments.command_line(args)
    show_verify(console, report)
    write_reports(console, args, report)
    if not report.passed:
        raise VerificationFailed(report.failure_line())


def run(args: argparse.Namespace) -> int:
    from facebatch.verify.verify_job import VerifyOptions, verify_model

    arguments.check_report_targets(args)
    embedder = arguments.embedder_description(args, None)[0] if arguments.embedder_flags_given(args) else None
    options = VerifyOptions(
        batch_sizes=args.batch_sizes,
        photos=arguments.photos(args),
        seed=args.seed,
        embedder=embedder,
        sizes=args.sizes,
        reference=arguments.reference_factory(args),
        det_thresh=args.det_thresh,
        nms_thresh=args.nms_thresh,
        strict=args.strict,
    )
    report = verify_model(args.model_file, options)
    if not report.passed:
        from facebatch.workflows.fix import repair_hint

        hint = repair_hint(args.model_file)
        if hint:
            report.notes.append(hint)
    finish(console_for(args), args, report)
    return 0
