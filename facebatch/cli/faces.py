"""What detect, embed and compare share on the command line: the flags into Options, the use case
(``facebatch.workflows.faces``: the models proven, outputs checked and written, unreadable photos
named), then what a person reads."""

from __future__ import annotations

import argparse
import sys

from facebatch.cli import arguments
from facebatch.cli.render import FACE_ROWS, console_for, show_faces
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
    show_faces(console, result.photos, result.times, rows=None if args.all_rows else FACE_ROWS)
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

    json_file, markdown_file = (None if t == arguments.STDOUT else t for t in (args.json, args.markdown))
    run = arguments.pipeline_run(args)
    result = compare(CompareOptions(args.first, args.second, args.threshold, run, json_file, markdown_file))
    match = result.match
    console = console_for(args)
    verdict = "same person" if match.same else "different people"
    console.print(
        f"{literal(args.first.name)} ({counted(len(match.first), 'face')}) vs {literal(args.second.name)} "
        f"({counted(len(match.second), 'face')}), best face of each: "
        f"cosine {match.cosine:.4f} → {verdict} (threshold {args.threshold:g})"
    )
    _reports_to_stdout(args, result)
    return 0


def _reports_to_stdout(args: argparse.Namespace, result) -> None:  # CompareResult | PairsResult
    """--json - and --markdown -: the report on standard output (the use case wrote the files)."""
    for target, render in ((args.json, result.to_json), (args.markdown, result.to_markdown)):
        if target == arguments.STDOUT:
            sys.stdout.write(render())


def run_pairs(args: argparse.Namespace) -> int:
    """compare --pairs: one line per pair, then accuracy, best threshold and AUC where the pairs are labelled."""
    from facebatch.workflows.pairs import PairsOptions, compare_pairs

    json_file, markdown_file = (None if t == arguments.STDOUT else t for t in (args.json, args.markdown))
    run = arguments.pipeline_run(args)
    result = compare_pairs(PairsOptions(args.pairs, args.threshold, run, json_file, markdown_file))
    console = console_for(args)
    for verdict in result.verdicts:
        console.print(literal(_pair_line(verdict)), soft_wrap=True, emoji=False)
    for line in result.summary():
        console.print(literal(line), soft_wrap=True)
    for target in (json_file, markdown_file):
        if target is not None:
            console.print(f"wrote {literal(str(target))}")
    _reports_to_stdout(args, result)
    if result.complete:
        return 0
    missing = [
        f"{counted(len(names), 'photo')} {what}: {', '.join(map(visible, names))}"
        for names, what in ((result.no_face, "with no face"), (result.unreadable, "could not be read"))
        if names
    ]
    print(f"facebatch: error: {'; '.join(missing)} (their pairs were not judged)", file=sys.stderr)
    return 1


def _pair_line(verdict) -> str:  # PairVerdict
    pair = verdict.pair
    line = f"row {pair.row}: {pair.first} vs {pair.second}: "
    line += verdict.verdict if verdict.cosine is None else f"cosine {verdict.cosine:.4f} → {verdict.verdict}"
    if pair.label is not None:
        mark = {True: " ✓", False: " ✗", None: ""}[verdict.correct]
        line += f" (labelled {'same' if pair.label else 'different'}{mark})"
    return line
