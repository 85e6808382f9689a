"""``facebatch search``: the gallery faces nearest each face of the query photos (or of an
``embed`` .npz), with subject, photo, box and cosine."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from facebatch.cli import arguments
from facebatch.engines.gallery.settings import DEFAULT_THRESHOLD, DEFAULT_TOP_K


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


def _gallery_models(args: argparse.Namespace, gallery):  # (ModelFile, ModelFile)
    """The gallery's detector and embedder: as given (and proven the same by sha256), or as its manifest records."""
    from facebatch.core.errors import SpecError
    from facebatch.engines.gallery.search import check_gallery_models

    manifest = gallery.manifest
    for flag, identity in (("detector", manifest.detector), ("embedder", manifest.embedder)):
        if getattr(args, flag) is None:
            if not Path(identity.file).is_file():
                raise SpecError(
                    f"the gallery's {flag} {identity.name} is no longer at {identity.file}; pass it as --{flag}"
                )
            setattr(args, flag, Path(identity.file))
    detector, embedder = arguments.pipeline_models(args, embed=True)
    check_gallery_models(gallery, detector, embedder)
    return detector, embedder


def run(args: argparse.Namespace) -> int:
    from facebatch.cli.render import console_for
    from facebatch.cli.terminal import literal, visible
    from facebatch.core.atomic import write_text_atomic
    from facebatch.core.errors import SpecError
    from facebatch.core.progress import warn
    from facebatch.core.words import counted
    from facebatch.engines.gallery.photos import collect_photos
    from facebatch.engines.gallery.search import GallerySearch, QueryFace, npz_queries, photo_queries

    if args.top_k < 1:
        raise SpecError(f"--top-k must be at least 1, got {args.top_k}")
    if args.json is not None and args.json != arguments.STDOUT:
        from facebatch.core.atomic import check_output_file

        check_output_file(args.json, "--json", arguments.input_files(args))  # not a query, not the gallery
    searcher = GallerySearch(args.gallery)
    queries: list[QueryFace] = []
    vectors = []
    npz = [q for q in args.queries if q.suffix.lower() == ".npz"]
    photos = [q for q in args.queries if q.suffix.lower() != ".npz"]
    for path in npz:
        if not path.is_file():
            raise SpecError(f"{path} does not exist; pass photos, folders or an .npz from 'facebatch embed'")
        embeddings, faces, boxes = npz_queries(path, searcher.gallery)
        queries += [QueryFace(str(path), face, box) for face, box in zip(faces, boxes, strict=True)]
        vectors += list(embeddings)
    faceless, unreadable = [], []
    if photos:
        detector, embedder = _gallery_models(args, searcher.gallery)
        paths = [Path(p.path) for p in collect_photos(photos)]
        with arguments.open_pipeline(args, detector, embedder) as pipeline:
            found = photo_queries(pipeline, paths)
        for failure in found.unreadable:
            warn(f"skipped {failure['photo']}: {failure['error']}")
        queries += found.faces
        vectors += found.vectors
        faceless, unreadable = found.no_face, [f["photo"] for f in found.unreadable]
    if vectors:
        import numpy as np

        for query, matches in zip(queries, searcher.search(np.stack(vectors), args.top_k, args.threshold), strict=True):
            query.matches = matches
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
    report = {
        "gallery": str(args.gallery),
        "threshold": args.threshold,
        "top_k": args.top_k,
        "faces": [q.to_dict() for q in queries],
        "no_face": faceless,
        "unreadable": unreadable,
    }
    if args.json == arguments.STDOUT:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    elif args.json is not None:
        write_text_atomic(args.json, json.dumps(report, indent=2) + "\n", "--json")
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
