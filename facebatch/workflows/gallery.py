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
from facebatch.core.errors import FacebatchError, SpecError
from facebatch.core.interrupts import keeping
from facebatch.core.progress import warn
from facebatch.core.words import counted
from facebatch.engines.gallery.defaults import (
    DEFAULT_FACES,
    DEFAULT_INDEX,
    DEFAULT_RECALL,
    DEFAULT_TOP_K,
    PHOTOS_PER_SHARD,
)
from facebatch.engines.gallery.faiss_index import IndexChoice
from facebatch.engines.gallery.index_job import IndexJob, IndexSummary, index_photos
from facebatch.engines.gallery.manifest import read_manifest
from facebatch.engines.gallery.photos import collect_photos
from facebatch.engines.gallery.search import (
    QUERIES_TAKEN,
    GallerySearch,
    QueryFace,
    check_gallery_models,
    npz_queries,
    photo_queries,
)
from facebatch.engines.gallery.store import Gallery
from facebatch.engines.pipeline.defaults import DEFAULT_MATCH_THRESHOLD
from facebatch.workflows.faces import PipelineRun, check_cosine, open_models, photo_inputs
from facebatch.workflows.models import choose_models

NOT_QUERIES = {".json": "JSON", ".csv": "a CSV table", ".txt": "text", ".md": "Markdown"}  # reports, not photos


@dataclass(frozen=True)
class IndexOptions:
    """``index``: photos (files and folders, walked recursively) into the gallery folder ``out``."""

    photos: Sequence[Path]  # none: only rebuild the index from the shards
    out: Path
    run: PipelineRun = field(default_factory=PipelineRun)
    faces: str = DEFAULT_FACES  # all: every face; best: the highest-scoring face of each photo
    subjects: Path | None = None  # a CSV of path,subject rows (paths relative to it)
    index: str = DEFAULT_INDEX  # auto (flat when small, else ivf or hnsw meeting recall), flat, hnsw, ivf, ivfpq…
    index_parameters: dict[str, int] = field(default_factory=dict)  # unset ones: the index kind's defaults
    recall: float = DEFAULT_RECALL  # recall@1 an approximate index must measure; its search parameter is tuned to it
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
    if options.ray:
        from facebatch.engines.gallery.ray_job import check_cluster

        check_cluster(options.ray_address)  # answers as Ray and takes our token: said before any work
    choice = IndexChoice(options.index, dict(options.index_parameters), options.recall)
    chosen = choose_models(options.run.models, embed=True)  # auto never picks BF16 for a gallery (no backend)
    detector, embedder = chosen.files
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
        runner_options=options.run.runner_options(chosen),  # the manifest records what each computes in
        photos_per_shard=options.photos_per_shard,
        ray=options.ray,
        ray_address=options.ray_address,
        ray_actors=options.ray_actors,
        detector_size=options.run.models.size,
    )
    with keeping(lambda: index_kept(Path(options.out))):
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
    threshold: float = DEFAULT_MATCH_THRESHOLD  # cosine below which a match is unknown (compare's, one default)
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
    index: dict[str, Any] = field(default_factory=dict)  # the manifest's record: type, parameters, measured recall

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
            best += f" (below {self.threshold:g})" if query.matches and not query.matches[0].known else ""
            lines.append(f"| {Path(query.source).name} | {query.face} | {query.answer} | {best} |")
        return "\n".join(lines) + "\n"


def search(options: SearchOptions) -> SearchResult:
    """For each face of each query, its top-k gallery faces by cosine (below the threshold: unknown)."""
    if options.json is not None:
        inputs = photo_inputs(list(options.queries), options.run, folders=[options.gallery])
        check_output_file(options.json, "json", inputs)  # not a query, not the gallery
    check_queries(options.queries)
    searcher = GallerySearch(Path(options.gallery))
    result = SearchResult(Path(options.gallery), options.threshold, options.top_k)
    result.index = dict(searcher.gallery.manifest.index or {})
    vectors: list = []
    npz = [Path(q) for q in options.queries if Path(q).suffix.lower() == ".npz"]
    photos = [Path(q) for q in options.queries if Path(q).suffix.lower() != ".npz"]
    for path in npz:
        if not path.is_file():
            raise SpecError(f"query {path} does not exist; pass photos, folders or an .npz of embed", field="queries")
        embeddings, faces, boxes = npz_queries(path, searcher.gallery)
        sources = npz_photos(path, len(faces))  # each row named by its photo, as a query photo is
        result.faces += [QueryFace(s, face, box) for s, face, box in zip(sources, faces, boxes, strict=True)]
        vectors += list(embeddings)
    if photos:
        run = gallery_run(options.run, searcher.gallery)
        chosen = choose_models(run.models, True, asked=gallery_precisions(run.models.precision, searcher.gallery))
        check_gallery_models(searcher.gallery, *chosen.files, chosen.precisions)
        with open_models(chosen, run) as pipeline:
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


def npz_photos(path: Path, rows: int) -> list[str]:
    """The photo each row of an ``embed`` .npz came from (it records ``images`` and ``image_index``); the .npz
    itself for rows it does not name."""
    import numpy as np

    with np.load(path, allow_pickle=False) as data:
        if not {"images", "image_index"} <= set(data.files):
            return [str(path)] * rows
        images, index = data["images"].reshape(-1), data["image_index"].reshape(-1)
    if len(index) != rows:
        return [str(path)] * rows
    return [str(images[i]) if 0 <= i < len(images) else str(path) for i in index.tolist()]


def check_queries(queries: Sequence[Path]) -> None:
    """Refuse, before the models are read, a query that is a report rather than a photo or an .npz (embed's JSON
    only indexes the rows of its .npz)."""
    for query in map(Path, queries):
        if query.suffix.lower() in NOT_QUERIES and query.is_file():
            raise SpecError(
                f"query {query} is {NOT_QUERIES[query.suffix.lower()]}, not a photo; {QUERIES_TAKEN} (embed's JSON "
                "indexes the rows of its .npz: pass the .npz)",
                field="queries",
            )


def index_kept(out: Path) -> str | None:
    """What an interrupted index leaves: the shards committed so far, each whole, which a run over the same
    gallery keeps (only photos not in them are run again); None before the first commit."""
    try:
        shards = read_manifest(out).shards
    except FacebatchError:
        return None
    if not shards:
        return None
    photos = counted(sum(entry.photos for entry in shards), "photo")
    return f"{counted(len(shards), 'shard')} ({photos}) kept in {out}; run again to resume"


def gallery_precisions(precision: str, gallery: Gallery) -> dict[str, str]:
    """Under ``auto``, per model the precision the gallery recorded it computing in (bf16, int8: its INT8 twin,
    else fp32), so search embeds as index did; another precision asked is checked against the record instead."""
    if precision != "auto":
        return {}
    follow = {"bf16": "bf16", "int8": "int8"}
    manifest = gallery.manifest
    return {i.role: follow.get(i.precision, "fp32") for i in (manifest.detector, manifest.embedder)}


def gallery_run(run: PipelineRun, gallery: Gallery) -> PipelineRun:
    """``run`` with the gallery's own detector and embedder files where it names none, at the detector size the
    gallery was indexed at where it names none."""
    models = run.models
    for role, identity in (("detector", gallery.manifest.detector), ("embedder", gallery.manifest.embedder)):
        if getattr(models, role) is None:
            if not Path(identity.file).is_file():
                raise SpecError(
                    f"the gallery's {role} {identity.name} is no longer at {identity.file}; name the {role} file",
                    field=role,
                )
            models = replace(models, **{role: Path(identity.file)})
    recorded = gallery.manifest.settings.get("detector_size")
    if models.size is None and isinstance(recorded, list) and len(recorded) == 2:
        models = replace(models, size=(int(recorded[0]), int(recorded[1])))  # the size the gallery was indexed at
    return replace(run, models=models)
