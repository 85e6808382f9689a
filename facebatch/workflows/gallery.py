"""``index`` and ``search``: galleries as use cases. The models are resolved and proven here like every
pipeline command's (``workflows.models``): INT8 only where its gate passed, an embedder that is a face
embedder, and for search the very files the gallery was built with (by sha256). Query photos that cannot
be read or show no face are named in the result, never dropped."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from facebatch.core.atomic import check_output_file, write_text_atomic
from facebatch.core.errors import SpecError
from facebatch.core.progress import warn
from facebatch.engines.gallery.defaults import (
    DEFAULT_FACES,
    DEFAULT_INDEX,
    DEFAULT_THRESHOLD,
    DEFAULT_TOP_K,
    PHOTOS_PER_SHARD,
)
from facebatch.engines.gallery.faiss_index import IndexChoice
from facebatch.engines.gallery.index_job import IndexJob, IndexSummary, index_photos
from facebatch.engines.gallery.manifest import read_manifest
from facebatch.engines.gallery.photos import collect_photos
from facebatch.engines.gallery.search import GallerySearch, QueryFace, check_gallery_models, npz_queries, photo_queries
from facebatch.engines.gallery.store import Gallery
from facebatch.workflows.faces import PipelineRun, check_cosine, open_models, photo_inputs
from facebatch.workflows.models import pipeline_models


@dataclass(frozen=True)
class IndexOptions:
    """``index``: photos (files and folders, walked recursively) into the gallery folder ``out``."""

    photos: Sequence[Path]  # none: only rebuild the index from the shards
    out: Path
    run: PipelineRun = field(default_factory=PipelineRun)
    faces: str = DEFAULT_FACES  # all: every face; best: the highest-scoring face of each photo
    subjects: Path | None = None  # a CSV of path,subject rows (paths relative to it)
    index: str = DEFAULT_INDEX  # flat, hnsw, ivf, ivfpq
    index_parameters: dict[str, int] = field(default_factory=dict)  # unset ones: the index kind's defaults
    photos_per_shard: int = PHOTOS_PER_SHARD
    ray: bool = False
    ray_address: str | None = None  # with ray: None = RAY_ADDRESS or a local instance
    ray_actors: int = 0  # 0: one per GPU of the cluster, or one per 2 CPUs when it has none
    json: Path | None = None  # the run's summary as JSON


def index(options: IndexOptions) -> IndexSummary:
    """Every face of the photos into the gallery (made if new; only new or changed photos run); photos that
    could not be read are recorded in the summary (``failed``) and the gallery's manifest."""
    if options.json is not None:
        # not a photo, not a model, not a file of the gallery being written
        inputs = photo_inputs(list(options.photos), options.run, folders=[options.out])
        check_output_file(options.json, "json", inputs)
    if not options.photos:
        read_manifest(options.out)  # only the index is rebuilt: the gallery must exist
    choice = IndexChoice(options.index, dict(options.index_parameters))
    detector, embedder = pipeline_models(options.run.models, embed=True)
    assert embedder is not None
    request = IndexJob(
        photos=[Path(p) for p in options.photos],
        out=Path(options.out),
        detector=detector,
        embedder=embedder,
        faces=options.faces,
        subjects_csv=options.subjects,
        index=choice,
        backend=options.run.backend,
        settings=options.run.pipeline,
        runner_options=options.run.runner_options(),
        photos_per_shard=options.photos_per_shard,
        ray=options.ray,
        ray_address=options.ray_address,
        ray_actors=options.ray_actors,
    )
    summary = index_photos(request)
    if options.json is not None:
        write_text_atomic(options.json, json.dumps(summary.to_dict(), indent=2) + "\n", "json")
    return summary


@dataclass(frozen=True)
class SearchOptions:
    """``search``: the faces of query photos (or of an ``embed`` .npz) in a gallery."""

    queries: Sequence[Path]  # photos, folders (walked recursively) and .npz files written by embed
    gallery: Path
    top_k: int = DEFAULT_TOP_K
    threshold: float = DEFAULT_THRESHOLD  # cosine below which a match is unknown
    # the models: None for detector/embedder takes the files the gallery records (they must be the same by sha256)
    run: PipelineRun = field(default_factory=PipelineRun)
    json: Path | None = None

    def __post_init__(self) -> None:
        if self.top_k < 1:
            raise SpecError(f"top_k must be at least 1, got {self.top_k}", field="top_k")
        check_cosine(self.threshold, "threshold")


@dataclass
class SearchResult:
    """Each query face with its matches; the query photos with no face, and those that could not be read
    (with the reason). Iterating gives the query faces."""

    gallery: Path
    threshold: float
    top_k: int
    faces: list[QueryFace] = field(default_factory=list)
    no_face: list[str] = field(default_factory=list)
    unreadable: list[dict[str, str]] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Every query photo was read and showed a face."""
        return not self.no_face and not self.unreadable

    def __iter__(self) -> Iterator[QueryFace]:
        return iter(self.faces)

    def __len__(self) -> int:
        return len(self.faces)

    def __getitem__(self, index: int) -> QueryFace:
        return self.faces[index]

    def to_dict(self) -> dict[str, Any]:
        return {
            "gallery": str(self.gallery),
            "threshold": self.threshold,
            "top_k": self.top_k,
            "faces": [q.to_dict() for q in self.faces],
            "no_face": self.no_face,
            "unreadable": [u["photo"] for u in self.unreadable],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def to_markdown(self) -> str:
        lines = ["| query | face | answer | cosine |", "|---|---:|---|---:|"]
        for query in self.faces:
            best = f"{query.matches[0].cosine:.3f}" if query.matches else "-"
            lines.append(f"| {Path(query.source).name} | {query.face} | {query.answer} | {best} |")
        return "\n".join(lines) + "\n"


def search(options: SearchOptions) -> SearchResult:
    """For each face of each query, its top-k gallery faces by cosine (below the threshold: unknown)."""
    if options.json is not None:
        inputs = photo_inputs(list(options.queries), options.run, folders=[options.gallery])
        check_output_file(options.json, "json", inputs)  # not a query, not the gallery
    searcher = GallerySearch(Path(options.gallery))
    result = SearchResult(Path(options.gallery), options.threshold, options.top_k)
    vectors: list = []
    npz = [Path(q) for q in options.queries if Path(q).suffix.lower() == ".npz"]
    photos = [Path(q) for q in options.queries if Path(q).suffix.lower() != ".npz"]
    for path in npz:
        if not path.is_file():
            raise SpecError(f"query {path} does not exist; pass photos, folders or an .npz of embed", field="queries")
        embeddings, faces, boxes = npz_queries(path, searcher.gallery)
        result.faces += [QueryFace(str(path), face, box) for face, box in zip(faces, boxes, strict=True)]
        vectors += list(embeddings)
    if photos:
        run = gallery_run(options.run, searcher.gallery)
        detector, embedder = pipeline_models(run.models, embed=True)
        check_gallery_models(searcher.gallery, detector, embedder)
        with open_models(detector, embedder, run) as pipeline:
            found = photo_queries(pipeline, [Path(p.path) for p in collect_photos(photos)])
        for failure in found.unreadable:
            warn(f"skipped {failure['photo']}: {failure['error']}", failure["field"] or None)
        result.faces += found.faces
        vectors += found.vectors
        result.no_face, result.unreadable = found.no_face, found.unreadable
    if vectors:
        import numpy as np

        matches = searcher.search(np.stack(vectors), options.top_k, options.threshold)
        for query, found_matches in zip(result.faces, matches, strict=True):
            query.matches = found_matches
    if options.json is not None:
        write_text_atomic(options.json, result.to_json(), "json")
    return result


def gallery_run(run: PipelineRun, gallery: Gallery) -> PipelineRun:
    """``run`` with the gallery's own detector and embedder files where it names none."""
    models = run.models
    for role, identity in (("detector", gallery.manifest.detector), ("embedder", gallery.manifest.embedder)):
        if getattr(models, role) is None:
            if not Path(identity.file).is_file():
                raise SpecError(
                    f"the gallery's {role} {identity.name} is no longer at {identity.file}; name the {role} file",
                    field=role,
                )
            models = replace(models, **{role: Path(identity.file)})
    return replace(run, models=models)
