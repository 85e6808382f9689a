"""``facebatch describe``: the spec (YAML) of a foreign ONNX face embedder."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from facebatch.cli import arguments
from facebatch.cli.render import console_for


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "describe",
        help="write the spec of a foreign ONNX face embedder (YAML) for verify and bench",
        description="Describe any ONNX face embedder with an [N,3,H,W] input (e.g. mobilefacenet_128d.onnx): "
        "the values you give (or a YAML you started) are checked against the graph, the rest is read from it or "
        "assumed, each marked so, and the result is printed or written as YAML for --embedder-spec.",
    )
    parser.add_argument("model_file", type=Path, metavar="MODEL.onnx")
    parser.add_argument(
        "-o", "--out", dest="output_file", type=Path, metavar="FILE.yaml", help="write here instead of printing"
    )
    arguments.add_sizes_argument(parser, several=False)
    arguments.add_embedder_arguments(parser)
    parser.set_defaults(handler=run, field_flags={"out": "--out"})


def run(args: argparse.Namespace) -> int:
    from facebatch.workflows.describe import DescribeOptions, describe

    options = DescribeOptions(
        model=args.model_file,
        out=args.output_file,
        embedder_spec=args.embedder_spec,
        values=arguments.embedder_values(args, args.size),
    )
    result = describe(options)
    if result.written is None:
        sys.stdout.write(result.yaml)
    else:
        console_for(args).print(f"wrote {result.written}")
    return 0
