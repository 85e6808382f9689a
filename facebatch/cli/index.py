"""``facebatch index``: every face of a photo archive into a gallery (Parquet shards, a manifest,
a FAISS index), locally or on a Ray cluster; again on the same photos, only what is new or changed."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from facebatch.cli import arguments
from facebatch.engines.gallery.defaults import (
    AUTO_FAST_ENOUGH_MS,
    DEFAULT_FACES,
    DEFAULT_INDEX,
    DEFAULT_RECALL,
    FACES_MODES,
    INDEX_PARAMETERS,
    INDEX_TYPES,
    PHOTOS_PER_SHARD,
    TUNED_PARAMETER,
)


def _parameters_help() -> str:
    def default(kind: str, name: str, value: int) -> str:
        return str(value) if value else ("tuned to --recall" if TUNED_PARAMETER.get(kind) == name else "from the data")

    return "; ".join(
        f"{kind}: " + ", ".join(f"{name}={default(kind, name, value)}" for name, value in values.items())
        for kind, values in INDEX_PARAMETERS.items()
        if values
    )


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "index",
        help="index every face of photos and folders into a gallery (Parquet + FAISS), locally or on Ray",
        description="Run the face pipeline (detect, align, embed) over photos and folders (walked recursively) and write a "
        "gallery folder: Parquet shards with one row per face (photo, face, box, score, landmarks, embedding, subject), "
        "a manifest (the models' sha256 and specs, counts, the photos that failed and why, the index) and a FAISS index "
        "whose ids are the Parquet rows. Subjects come from the folder layout (PEOPLE/<subject>/<photo>) or from "
        "--subjects. Run again on the same photos, only new or changed ones are indexed; a run stopped at any moment "
        "keeps every shard it committed. No photos: rebuild the index from the shards. A photo that cannot be read is "
        "recorded and skipped; the exit status is then 1.",
    )
    parser.add_argument("images", nargs="*", type=Path, metavar="PHOTO_OR_DIR")
    parser.add_argument("--out", type=Path, required=True, metavar="GALLERY", help="the gallery folder (made if new)")
    parser.add_argument(
        "--subjects",
        type=Path,
        metavar="FILE.csv",
        help="path,subject rows naming each photo's person (paths relative to the CSV)",
    )
    parser.add_argument(
        "--faces",
        choices=FACES_MODES,
        default=DEFAULT_FACES,
        help=f"all: every face; best: the highest-scoring face of each photo, for enrolment (default {DEFAULT_FACES})",
    )
    parser.add_argument(
        "--index",
        choices=INDEX_TYPES,
        default=DEFAULT_INDEX,
        help="the FAISS index: flat = exact inner product (IndexFlatIP); hnsw, ivf, ivfpq for large galleries; "
        "ivfpq_refine = IVF-PQ codes in memory, their best candidates re-ranked exactly from the vectors read from "
        "the index file (a fraction of flat's memory); auto = flat while one exact query takes a few ms, else ivf "
        f"if it reaches --recall within {AUTO_FAST_ENOUGH_MS:g} ms a query, else ivfpq_refine if that does, else the "
        "fastest of the three that reaches it "
        f"(default {DEFAULT_INDEX})",
    )
    parser.add_argument(
        "--recall",
        type=float,
        default=DEFAULT_RECALL,
        metavar="FRACTION",
        help="the recall@1 against exact search that an approximate index must measure, less one standard error, on "
        "held-out queries (a sample of the gallery, each searched among the rest); its nprobe/ef_search is tuned to "
        "the smallest value reaching "
        f"it, and an index that cannot is refused with the best recall it reached (default {DEFAULT_RECALL:g})",
    )
    parser.add_argument(
        "--index-param",
        action="append",
        default=[],
        metavar="NAME=N",
        help=f"an index parameter, repeatable; unset ones take these: {_parameters_help()}",
    )
    parser.add_argument(
        "--photos-per-shard",
        type=int,
        default=PHOTOS_PER_SHARD,
        metavar="N",
        help=f"photos per Parquet shard, each committed as it is written (default {PHOTOS_PER_SHARD})",
    )
    parser.add_argument(
        "--ray",
        nargs="?",
        const="",
        default=None,
        metavar="ADDRESS",
        help="run on Ray Data: a cluster's address (HOST:PORT, ray://HOST:10001), or none for RAY_ADDRESS or a local "
        "instance (the ray extra)",
    )
    parser.add_argument(
        "--ray-actors",
        type=int,
        default=0,
        metavar="N",
        help="pipeline actors on Ray; 0, the default, takes one per GPU, or one per 2 CPUs on a cluster without GPUs",
    )
    arguments.add_pipeline_arguments(parser, embed=True)
    parser.add_argument(
        "--json", type=Path, metavar="FILE", help="write the run's summary as JSON ('-': standard output)"
    )
    parser.set_defaults(
        handler=run,
        markdown=None,
        junit=None,
        field_flags={"index_parameters": "--index-param", "ray_address": "--ray"},
    )


def run(args: argparse.Namespace) -> int:
    from facebatch.cli.render import console_for
    from facebatch.cli.terminal import literal, visible
    from facebatch.core.words import counted
    from facebatch.engines.gallery.faiss_index import parse_index_parameters
    from facebatch.workflows.gallery import IndexOptions, index

    options = IndexOptions(
        photos=args.images,
        out=args.out,
        run=arguments.pipeline_run(args),
        faces=args.faces,
        subjects=args.subjects,
        index=args.index,
        index_parameters=parse_index_parameters(args.index_param),
        recall=args.recall,
        photos_per_shard=args.photos_per_shard,
        ray=args.ray is not None,
        ray_address=args.ray or None,
        ray_actors=args.ray_actors,
        json=None if args.json == arguments.STDOUT else args.json,
    )
    summary = index(options)
    console = console_for(args)
    rate = f", {summary.photos_per_second:.1f} photos/s" if summary.photos_run else ""
    where = f"ray: {summary.cluster}" if summary.cluster else summary.where
    console.print(
        f"{'indexed' if summary.photos_run else 'nothing new to index'}: {counted(summary.photos_run, 'photo')} run"
        f" ({summary.photos_unchanged} unchanged), {counted(summary.faces_added, 'face')} added, "
        f"{len(summary.failed)} failed ({literal(where)}{rate})",
        soft_wrap=True,
        emoji=False,
    )
    if summary.ray_nodes:  # the work each Ray node's pipeline actors did
        nodes = ", ".join(f"{node['address']} {counted(node['photos'], 'photo')}" for node in summary.ray_nodes)
        console.print(f"ray nodes: {literal(nodes)}", soft_wrap=True, emoji=False)
    built = "built" if summary.index_built else "current"
    console.print(  # the gallery's own strings (the index's description) are shown literally, never as markup
        f"gallery {literal(str(summary.gallery))}: {counted(summary.gallery_photos, 'photo')}, "
        f"{counted(summary.gallery_faces, 'face')} in {counted(summary.shards, 'shard')}; index {literal(summary.index)} "
        f"{built}",
        soft_wrap=True,
        emoji=False,
    )
    if args.json == arguments.STDOUT:
        sys.stdout.write(json.dumps(summary.to_dict(), indent=2) + "\n")
    if summary.failed:
        print(
            f"facebatch: error: {len(summary.failed)} of {counted(summary.photos_run, 'photo')} could not be read "
            f"(recorded in {args.out}/manifest.json): " + ", ".join(visible(f["photo"]) for f in summary.failed),
            file=sys.stderr,
        )
        return 1
    return 0
