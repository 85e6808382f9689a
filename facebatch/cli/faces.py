"""What detect, embed and compare share on the command line: the flags into Options, the use case
(``facebatch.workflows.faces``: the models proven, outputs checked and written, unreadable photos
named), then what a person reads."""

from __future__ import annotations

import argparse
import sys

from facebatch.cli import arguments
from facebatch.cli.render import console_for, show_faces
from facebatch.cli.terminal import literal, visible
from facebatch.core.words import counted


def _failed_line(failed: list, total: int) -> str:
    return f"facebatch: error: {len(failed)} of {counted(total, 'photo')} could not be read: " + ", ".join(
        visible(str(r.path)) for r in failed
    )


def run_pipeline_command(args: argparse.Namespace, embed: bool) -> int:
    """detect and embed: the flags into Options, the use case, then the table and what was written."""
    from facebatch.workflows.faces import DetectOptions, EmbedOptions
    from facebatch.workflows.faces import detect as run_detect
    from facebatch.workflows.faces import embed as run_embed

    json_file = None if args.json == arguments.STDOUT else args.json
    run, command = arguments.pipeline_run(args), arguments.command_line(args)
    if embed:
        result = run_embed(EmbedOptions(args.images, args.output, run, json_file, command))
    else:
        result = run_detect(DetectOptions(args.images, run, json_file, args.draw, command))
    console = console_for(args)
    show_faces(console, result.photos, result.times)
    if embed:
        console.print(f"wrote {args.output} ({result.faces} embeddings)")
    if args.json == arguments.STDOUT:
        sys.stdout.write(result.to_json())
    elif args.json is not None:
        console.print(f"wrote {args.json}")
    if args.draw is not None:
        console.print(f"wrote {result.drawn} annotated copies to {args.draw}")
    if result.failed:
        print(_failed_line(result.failed, len(result.photos)), file=sys.stderr)
        return 1
    return 0


def run_compare(args: argparse.Namespace) -> int:
    from facebatch.workflows.faces import CompareOptions, compare

    json_file = None if args.json == arguments.STDOUT else args.json
    options = CompareOptions(args.first, args.second, args.threshold, arguments.pipeline_run(args), json_file)
    result = compare(options)
    match = result.match
    console = console_for(args)
    verdict = "same person" if match.same else "different people"
    console.print(
        f"{literal(args.first.name)} ({counted(len(match.first), 'face')}) vs {literal(args.second.name)} "
        f"({counted(len(match.second), 'face')}), best face of each: "
        f"cosine {match.cosine:.4f} → {verdict} (threshold {args.threshold:g})"
    )
    if args.json == arguments.STDOUT:
        sys.stdout.write(result.to_json())
    return 0
