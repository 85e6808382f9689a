"""``facebatch search``: the gallery faces nearest each face of the query photos (or of an
``embed`` .npz), with subject, photo, box and cosine."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from facebatch.cli import arguments
from facebatch.engines.gallery.defaults import DEFAULT_TOP_K
from facebatch.engines.pipeline.defaults import DEFAULT_MATCH_THRESHOLD


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
        type=arguments.parse_cosine,
        default=DEFAULT_MATCH_THRESHOLD,
        metavar="COS",
        help=f"cosine below which a match is unknown (default {DEFAULT_MATCH_THRESHOLD:g})",
    )
    arguments.add_pipeline_arguments(parser, embed=True)
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the matches as JSON ('-': standard output)")
    parser.set_defaults(handler=run, markdown=None, junit=None)


def query_lines(query, threshold: float) -> list[str]:  # QueryFace
    """One query face: its answer with the best match, then the other matches; a match below the threshold
    says so (it is no match: the answer is unknown). A query from an .npz is named by the photo embed recorded."""

    def below(match) -> str:
        return "" if match.known else f" below {threshold:g}"

    name = Path(query.source).name
    if not query.matches:
        return [f"{name} face {query.face} → {query.answer}"]
    best, *others = query.matches
    lines = [
        f"{name} face {query.face} → {query.answer} (cosine {best.cosine:.3f}{below(best)}, "
        f"{best.record['subject'] + ' in ' if not best.known and best.record['subject'] else ''}"
        f"{Path(best.record['photo']).name} face {best.record['face']})"
    ]
    for match in others:
        who, photo = match.record["subject"] or "-", Path(match.record["photo"]).name
        lines.append(
            f"    {match.rank}. {who}  cosine {match.cosine:.3f}{below(match)}  {photo} face {match.record['face']}"
        )
    return lines


def index_line(record: dict) -> str:
    """The gallery's index and what its manifest says was measured of it (``--verbose``)."""
    line = f"index: {record.get('faiss') or record.get('type', '?')}"
    if record.get("asked") == "auto":
        line += ", chosen by --index auto"
    measured = record.get("recall")
    if not measured:
        return line + "; recall not measured (built by an older facebatch: build the index again to measure it)"
    if measured.get("exact"):
        return line + ": exact search, recall@1 and recall@10 1"
    tuned = f", {measured['tuned']} tuned to it" if measured.get("tuned") else ""
    return (
        f"{line}: recall@1 {measured.get('at_1', 0):.3f}, recall@10 {measured.get('at_10', 0):.3f} on "
        f"{held_out_queries(measured.get('queries'))} (target {measured.get('target', 0):g}{tuned}), "
        f"{measured.get('latency_p50_ms', 0):.2f} ms per query (p50)"
    )


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
    if getattr(args, "verbose", False):
        console.print(literal(index_line(result.index)), soft_wrap=True, emoji=False)
    for query in queries:  # the gallery's strings (subjects, photo names) are shown literally, never as markup
        for line in query_lines(query, result.threshold):
            console.print(literal(line), soft_wrap=True, emoji=False)
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


def held_out_queries(count) -> str:
    from facebatch.core.words import counted

    return counted(count, "held-out query", "held-out queries") if isinstance(count, int) else "? held-out queries"
