"""Argument parsing shared by the commands: the argument groups several commands take (input
size, frames, reports, reference, foreign embedder, the verifier's run) and the values they make
(value parsers in ``values``, the pipeline's flags in ``pipeline_arguments``, inputs and outputs in
``targets``). Defaults are imported from the modules that own them, never repeated here; only
light modules are imported at parser-building time (no torch, onnx or runtimes)."""

from __future__ import annotations

import argparse
from pathlib import Path

from facebatch.cli.pipeline_arguments import (  # noqa: F401 (the commands take them from here)
    add_lanes_argument,
    add_pipeline_arguments,
    add_precision_argument,
    model_options,
    pipeline_run,
)
from facebatch.cli.targets import (  # noqa: F401
    OUTPUT_DESTS,
    WHOLE_FOLDER_DESTS,
    check_report_targets,
    command_line,
    input_files,
    reports_to_stdout,
)
from facebatch.cli.values import (  # noqa: F401
    OPSET_HELP,
    STDOUT,
    parse_batch_size,
    parse_batch_sizes,
    parse_cosine,
    parse_floats,
    parse_opset,
    parse_size,
    parse_sizes,
)
from facebatch.configs.arcface import ARCFACE_NORMALIZE, EMBEDDING_SIZE
from facebatch.engines.pipeline.defaults import DEFAULT_FRAME_SEED
from facebatch.engines.pipeline.scrfd_decode import DET_THRESH, NMS_THRESH
from facebatch.verify.independence import DEFAULT_BATCH_SIZES


def add_sizes_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup, several: bool) -> None:
    """``--size``: the model's input size, one name in every command."""
    if several:
        parser.add_argument(
            "--size",
            dest="sizes",
            type=parse_sizes,
            metavar="N|HxW[,…]",
            help="input size(s) to check at, e.g. 640 or 320,320x480 (default: the artifact's own; "
            "a graph with a symbolic size is checked at its size and a non-square one)",
        )
    else:
        parser.add_argument("--size", type=parse_size, metavar="N|HxW", help="input size, N or HxW")


def add_embedding_size_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """One flag, one meaning: how many values one frame's embedding has."""
    parser.add_argument(
        "--embedding-size",
        type=int,
        metavar="N",
        help=f"values in one frame's embedding: the size an ArcFace network is built with (checkpoints, "
        f"seeded weights; default {EMBEDDING_SIZE}), or the size a foreign embedder's output is checked against",
    )


def add_frames_arguments(parser: argparse.ArgumentParser, purpose: str) -> None:
    parser.add_argument(
        "--images",
        type=Path,
        metavar="PATH",
        help=f"a photo or a folder of photos used as frames for {purpose} (seeded noise frames fill the rest)",
    )
    parser.add_argument(
        "--seed", type=int, default=DEFAULT_FRAME_SEED, help=f"seed for the noise frames (default {DEFAULT_FRAME_SEED})"
    )


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json", type=Path, metavar="FILE", help="write the full report as JSON ('-': standard output)"
    )
    parser.add_argument(
        "--markdown", type=Path, metavar="FILE", help="write the report as Markdown ('-': standard output)"
    )
    parser.add_argument(
        "--junit",
        type=Path,
        metavar="FILE",
        help="write the report as JUnit XML, one testcase per check ('-': standard output)",
    )


def add_verify_run_arguments(parser: argparse.ArgumentParser) -> None:
    """How the verifier runs (verify, and fix after its repair)."""
    sizes = ",".join(map(str, DEFAULT_BATCH_SIZES))
    parser.add_argument(
        "--batch-sizes",
        type=parse_batch_sizes,
        default=DEFAULT_BATCH_SIZES,
        metavar="LIST",
        help=f"batch sizes the verifier tests, at least one of 2 or more (default {sizes})",
    )
    parser.add_argument(
        "--det-thresh",
        type=float,  # its range is the options' to check (check_thresholds), both ways alike
        default=DET_THRESH,
        metavar="P",
        help=f"check 3 (SCRFD): score threshold of the decoded detections (default {DET_THRESH:g}, as insightface)",
    )
    parser.add_argument(
        "--nms-thresh",
        type=float,  # its range is the options' to check (check_thresholds), both ways alike
        default=NMS_THRESH,
        metavar="IOU",
        help=f"check 3 (SCRFD): NMS IoU threshold (default {NMS_THRESH:g}, as insightface)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="the release gate: a skipped check (no reference, no face detected) fails, with its reason",
    )
    add_frames_arguments(parser, "the checks")
    add_report_arguments(parser)


def add_reference_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--reference",
        metavar="torch|FILE.onnx",
        help="check 4: compare with the torch model this artifact was exported from ('torch': rebuilt "
        "from its metadata and weights), or with another ONNX file run one frame at a time (e.g. the "
        "official batch-1 model; its 2-D head layout is unfolded)",
    )
    parser.add_argument(
        "--reference-weights",
        type=Path,
        metavar="FILE",
        help="with --reference torch: the weights the artifact was exported from, when its sidecar "
        ".json does not name them (checked against the recorded sha256)",
    )
    parser.add_argument(
        "--reference-config",
        type=Path,
        metavar="FILE.py",
        help="with --reference torch: the SCRFD config .py of a custom-trained detector",
    )


EMBEDDER_FLAGS = ("embedder_spec", "mean", "std", "color_order", "embedding_size", "embedder_input", "embedder_output")


def _values(values: tuple[float, ...]) -> str:
    """One number when the three channels agree (127.5), else R,G,B."""
    return f"{values[0]:g}" if len(set(values)) == 1 else ",".join(f"{v:g}" for v in values)


def add_embedder_arguments(parser: argparse.ArgumentParser) -> None:
    """Describe a foreign embedder: a YAML spec, and/or single values that override it
    (its input size is ``--size``)."""
    group = parser.add_argument_group("foreign embedder (any ONNX with an [N,3,H,W] input)")
    group.add_argument(
        "--embedder-spec",
        type=Path,
        metavar="FILE.yaml",
        help="YAML with input_size, mean, std, color_order, embedding_size (see 'facebatch describe')",
    )
    described = ARCFACE_NORMALIZE  # what an embedder description assumes where nothing says otherwise
    group.add_argument(
        "--mean", type=parse_floats, metavar="M|R,G,B", help=f"pixel mean (default {_values(described.mean)})"
    )
    group.add_argument(
        "--std", type=parse_floats, metavar="S|R,G,B", help=f"pixel std (default {_values(described.std)})"
    )
    group.add_argument(
        "--color-order",
        choices=("RGB", "BGR"),
        type=str.upper,
        help=f"channel order the model wants (default {'RGB' if described.rgb else 'BGR'})",
    )
    add_embedding_size_argument(group)
    group.add_argument("--input", dest="embedder_input", metavar="NAME", help="graph input, when there are several")
    group.add_argument(
        "--output", dest="embedder_output", metavar="NAME", help="embedding output, when there are several"
    )


# ---- from parsed arguments to library values --------------------------------------------------


def photos(args: argparse.Namespace) -> list[Path]:
    """What ``--images`` names (a photo or a folder of them), as given: the use case resolves it (``photo_files``),
    the same for the command line and the Python API."""
    return [] if args.images is None else [args.images]


def embedder_flags_given(args: argparse.Namespace) -> bool:
    return any(getattr(args, k, None) is not None for k in EMBEDDER_FLAGS)


def embedder_values(args: argparse.Namespace, size: tuple[int, int] | None) -> dict:
    """The single values the foreign-embedder flags state (a spec's keys), None where a flag was not given."""
    return {
        "input_size": size,
        "mean": args.mean,
        "std": args.std,
        "color_order": args.color_order,
        "embedding_size": args.embedding_size,
        "input": args.embedder_input,
        "output": args.embedder_output,
    }


def embedder_description(args: argparse.Namespace, size: tuple[int, int] | None):  # (EmbedderDescription, set)
    """What the flags (over an ``--embedder-spec`` file) say about a foreign embedder, and
    which keys were stated at all (``configs.embedder.stated_embedder``)."""
    from facebatch.configs.embedder import stated_embedder

    return stated_embedder(args.embedder_spec, embedder_values(args, size))
