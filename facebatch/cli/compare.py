"""``facebatch compare``: are the best faces of two photos the same person? With ``--pairs``: a CSV of pairs,
every photo embedded once, each pair's verdict and, for labelled pairs, accuracy, best threshold and ROC AUC."""

from __future__ import annotations

import argparse
from pathlib import Path

from facebatch.cli import arguments
from facebatch.engines.pipeline.defaults import DEFAULT_MATCH_THRESHOLD


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "compare",
        help="cosine similarity of the best face of two photos (or of each pair of a CSV), same/different at a threshold",
        description="Detect, align and embed the best face (highest score) of each photo, and compare their embeddings by "
        "cosine similarity. The threshold depends on the embedder: check it on pairs you know, with --pairs: a CSV of "
        "file_x,file_y[,label] rows (header optional; paths relative to the CSV's folder; label 1/0 or same/different). "
        "Each distinct photo is embedded once; each pair gets its cosine and verdict, and labelled pairs the accuracy at "
        "the threshold, the best threshold and the ROC AUC. A photo with no face gives its pairs the verdict 'no face' "
        "and is named; the others are still judged, and the exit status is then 1.",
    )
    parser.add_argument("first", type=Path, metavar="A", nargs="?")
    parser.add_argument("second", type=Path, metavar="B", nargs="?")
    parser.add_argument(
        "--pairs", type=Path, metavar="FILE.csv", help="compare each pair of this CSV instead of two photos"
    )
    parser.add_argument(
        "--threshold",
        type=arguments.parse_cosine,
        default=DEFAULT_MATCH_THRESHOLD,
        metavar="T",
        help=f"cosine at or above which the faces are called the same person (default {DEFAULT_MATCH_THRESHOLD:g})",
    )
    arguments.add_pipeline_arguments(parser, embed=True)
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the comparison as JSON ('-': standard output)")
    parser.add_argument(
        "--markdown", type=Path, metavar="FILE", help="write the comparison as Markdown ('-': standard output)"
    )
    parser.set_defaults(handler=run, junit=None, draw=None)


def run(args: argparse.Namespace) -> int:
    from facebatch.cli.faces import run_compare, run_pairs

    photos = [p for p in (args.first, args.second) if p is not None]
    if args.pairs is not None and photos:
        args.parser.error("compare takes two photos or --pairs FILE.csv, not both")
    if args.pairs is None and len(photos) != 2:
        args.parser.error("compare takes two photos A B (or --pairs FILE.csv)")
    return run_pairs(args) if args.pairs is not None else run_compare(args)
