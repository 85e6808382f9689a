"""``facebatch embed``: an embedding per face of every photo, batched across photos."""

from __future__ import annotations

import argparse
from pathlib import Path

from facebatch.cli import arguments
from facebatch.cli.render import FACE_ROWS


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "embed",
        help="embed every face of photos and folders (detect, align, embed) into an .npz",
        description="Detect faces, align each on its 5 landmarks (Umeyama similarity onto the ArcFace template) and embed "
        "them, batched across photos; embeddings are L2-normalised. The .npz holds embeddings [faces, D], image_index, "
        "images, boxes, scores and landmarks; --json writes an index of its rows. A photo that cannot be read is named and "
        "skipped; the exit status is then 1.",
    )
    parser.add_argument("images", nargs="+", type=Path, metavar="IMAGE_OR_DIR")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="FILE.npz", help="where the embeddings go")
    arguments.add_pipeline_arguments(parser, embed=True)
    parser.add_argument(
        "--json",
        type=Path,
        metavar="FILE",
        help="write the index of the .npz rows (photo, box, score, landmarks) as JSON",
    )
    parser.add_argument(
        "--all",
        dest="all_rows",
        action="store_true",
        help=f"show every photo in the table (default: the first {FACE_ROWS}; the JSON has all)",
    )
    parser.set_defaults(handler=run, markdown=None, junit=None, draw=None)


def run(args: argparse.Namespace) -> int:
    from facebatch.cli.faces import run_pipeline_command

    return run_pipeline_command(args, embed=True)
