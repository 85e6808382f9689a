"""``facebatch detect``: faces in photos and folders (box, score, 5 landmarks), batched."""

from __future__ import annotations

import argparse
from pathlib import Path

from facebatch.cli import arguments
from facebatch.cli.render import FACE_ROWS


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "detect",
        help="find faces in photos and folders: box, score and 5 landmarks per face",
        description="Detect faces with an SCRFD detector, batched: photos are read and letterboxed ahead of the detector by "
        "reader threads, the detector takes batches of them, and every face comes back in its photo's pixels (insightface's "
        "decode and NMS). A photo that cannot be read is named and skipped; the exit status is then 1.",
    )
    parser.add_argument("images", nargs="+", type=Path, metavar="IMAGE_OR_DIR")
    arguments.add_pipeline_arguments(parser, embed=False)
    parser.add_argument(
        "--json", type=Path, metavar="FILE", help="write every photo's faces as JSON ('-': standard output)"
    )
    parser.add_argument(
        "--draw", type=Path, metavar="DIR", help="write annotated copies of the photos (boxes, scores, landmarks) here"
    )
    parser.add_argument(
        "--all",
        dest="all_rows",
        action="store_true",
        help=f"show every photo in the table (default: the first {FACE_ROWS}; the JSON has all)",
    )
    parser.set_defaults(handler=run, markdown=None, junit=None)


def run(args: argparse.Namespace) -> int:
    from facebatch.cli.faces import run_pipeline_command

    return run_pipeline_command(args, embed=False)
