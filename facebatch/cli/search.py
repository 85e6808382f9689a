"""``facebatch search``: the gallery faces nearest each face of the query photos (or of an
``embed`` .npz), with subject, photo, box and cosine."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from facebatch.cli import arguments
from facebatch.engines.gallery.defaults import DEFAULT_THRESHOLD, DEFAULT_TOP_K


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "search",
        help="find the faces of query photos (or an embed .npz) in a gallery: top-k matches by cosine",
        description="For each face of each query photo: the top-k gallery faces (subject, photo, face box, cosine); a "
        "match below --threshold is unknown. Query photos run through the gallery's own detector and embedder (its "
        "manifest names them by sha256; --detector/--embedder must be the same files). A query may also be an .npz "
        "written by 'facebatch embed' with the same models. A query photo without a face is named; the exit status is "
        "then 1.",
    )
    parser.add_argument("queries", nargs="+", type=Path, metavar="QUERY")
    parser.add_argument(
        "--gallery", type=Path, required=True, metavar="GALLERY", help="a folder 'facebatch index' wrote"
    )
    parser.add_argument(
        "--top-k", type=int, default=DEFAULT_TOP_K, metavar="K", help=f"matches per face (default {DEFAULT_TOP_K})"
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=DEFAULT_THRESHOLD,
        metavar="COS",
        help=f"cosine below which a match is unknown (default {DEFAULT_THRESHOLD:g})",
    )
    arguments.add_pipeline_arguments(parser, embed=True)
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the matches as JSON ('-': standard output)")
    parser.set_defaults(handler=run, markdown=None, junit=None)


def run(args: argparse.Namespace) -> int:
    from facebatch.cli.render import console_for
    from facebatch.cli.terminal import literal, visible
    from facebatch.core.words import counted
    from facebatch.workflows.gallery import SearchOptions, search

    json_file = None if args.json == arguments.STDOUT else args.json
    run = arguments.pipeline_run(args)
    result = search(SearchOptions(args.queries, args.gallery, args.top_k, args.threshold, run, json_file))
    queries = result.faces
    console = console_for(args)
    for query in queries:  # the gallery's strings (subjects, photo names) are shown literally, never as markup
        name = literal(Path(query.source).name)
        best = query.matches[0] if query.matches else None
        detail = (
            f" (cosine {best.cosine:.3f}, {literal(Path(best.record['photo']).name)} face {best.record['face']})"
            if best
            else ""
        )
        console.print(f"{name} face {query.face} → {literal(query.answer)}{detail}", soft_wrap=True, emoji=False)
        for match in query.matches[1:]:
            who = literal(match.record["subject"] or "-")
            photo = literal(Path(match.record["photo"]).name)
            console.print(
                f"    {match.rank}. {who}  cosine {match.cosine:.3f}  {photo} face {match.record['face']}",
                soft_wrap=True,
                emoji=False,
            )
    if args.json == arguments.STDOUT:
        sys.stdout.write(result.to_json())
    faceless, unreadable = result.no_face, [u["photo"] for u in result.unreadable]
    missing = faceless + unreadable
    if missing:
        what = []
        if faceless:
            what.append(f"{counted(len(faceless), 'query photo')} with no face: {', '.join(map(visible, faceless))}")
        if unreadable:
            shown = ", ".join(map(visible, unreadable))
            what.append(f"{counted(len(unreadable), 'query photo')} could not be read: {shown}")
        print(f"facebatch: error: {'; '.join(what)}", file=sys.stderr)
        return 1
    return 0
