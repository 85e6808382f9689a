"""``facebatch describe``: the spec (YAML) of a foreign ONNX face embedder."""

from __future__ import annotations

import argparse
import os
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
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from facebatch.configs.embedder import embedder_spec, embedder_yaml, stated_embedder
    from facebatch.configs.family import describe_family, detect_family
    from facebatch.configs.spec import Family
    from facebatch.configs.spec_io import stored_spec
    from facebatch.core.atomic import write_text_atomic
    from facebatch.core.errors import SpecError
    from facebatch.core.onnx_graph import load_onnx

    if args.output_file is not None:
        from facebatch.core.atomic import check_output_file

        check_output_file(args.output_file, "output_file", arguments.input_files(args))  # never over its model
    model = load_onnx(args.model_file, "model file", SpecError)
    ours, family = stored_spec(model) is not None, detect_family(model)
    if ours or family is not Family.EMBEDDER:
        what = "carries its own facebatch spec" if ours else f"is {describe_family(family)}"
        raise SpecError(
            f"{args.model_file.name} {what}; describe writes specs of foreign face embedders (verify reads "
            "detectors by their outputs and our artifacts by their metadata)"
        )
    values = arguments.embedder_values(args, args.size)
    description, stated = stated_embedder(args.embedder_spec, values)
    spec = embedder_spec(model, description, args.model_file.name)
    resolved = description.with_overrides(
        name=description.name or spec.name,
        input_size=spec.input_size,
        embedding_size=spec.embedding_size,
        input=spec.input.name,
        output=spec.outputs[0].name,
    )
    folder = Path(".") if args.output_file is None else args.output_file.parent  # model: is relative to the spec
    text = embedder_yaml(
        resolved, stated, args.model_file.name, os.path.relpath(args.model_file.resolve(), folder.resolve())
    )
    if args.output_file is None:
        sys.stdout.write(text)
    else:
        write_text_atomic(args.output_file, text, "output_file")
        console_for(args).print(f"wrote {args.output_file}")
    return 0
