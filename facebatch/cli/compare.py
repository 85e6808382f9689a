"""``facebatch compare``: are the best faces of two photos the same person?"""

from __future__ import annotations

import argparse
from pathlib import Path

from facebatch.cli import arguments
from facebatch.engines.pipeline.defaults import DEFAULT_MATCH_THRESHOLD


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "compare",
        help="cosine similarity of the best face of two photos, and same/different at a threshold",
        description="Detect, align and embed the best face (highest score) of each photo, and compare their embeddings by "
        "cosine similarity. The threshold depends on the embedder: check it on pairs you know.",
    )
    parser.add_argument("first", type=Path, metavar="A")
    parser.add_argument("second", type=Path, metavar="B")
    parser.add_argument(
        "--threshold",
        type=arguments.parse_cosine,
        default=DEFAULT_MATCH_THRESHOLD,
        metavar="T",
        help=f"cosine at or above which the faces are called the same person (default {DEFAULT_MATCH_THRESHOLD:g})",
    )
    arguments.add_pipeline_arguments(parser, embed=True)
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the comparison as JSON ('-': standard output)")
    parser.set_defaults(handler=run, markdown=None, junit=None, draw=None)


def run(args: argparse.Namespace) -> int:
    from facebatch.cli.faces import run_compare

    return run_compare(args)
