"""``facebatch index``: every face of a photo archive into a gallery, locally or on Ray.

Runs the same ``FacePipeline`` as ``embed`` (no second decoder, aligner or embedder). Photos
that are already in the gallery unchanged are not run again; new ones are committed a shard at
a time (``PHOTOS_PER_SHARD``), so a run stopped at any moment keeps what it committed; the FAISS
index is built from the shards at the end.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from facebatch.configs.model_file import ModelFile
from facebatch.configs.spec_io import spec_to_dict
from facebatch.core.errors import SpecError
from facebatch.core.progress import progress_bar, warn
from facebatch.core.trusted_paths import printable
from facebatch.core.words import counted
from facebatch.engines.gallery.defaults import DEFAULT_FACES, FACES_MODES, PHOTOS_PER_SHARD
from facebatch.engines.gallery.errors import GalleryError, ShardDamaged
from facebatch.engines.gallery.faiss_index import IndexChoice, import_faiss, write_index
from facebatch.engines.gallery.manifest import ModelIdentity, ShardEntry
from facebatch.engines.gallery.photos import Photo, collect_photos
from facebatch.engines.gallery.recall import build_measured
from facebatch.engines.gallery.rows import PhotoState
from facebatch.engines.gallery.store import Gallery, create_or_open, photos_to_index
from facebatch.engines.gallery.table import shard_table
from facebatch.engines.pipeline.opening import open_pipeline
from facebatch.engines.pipeline.options import PipelineSettings
from facebatch.engines.runners.factory import RunnerOptions

Advance = Callable[[str], None]


@dataclass(frozen=True)
class IndexJob:
    """What ``index_photos`` indexes, into which gallery, with which models and pipeline."""

    photos: Sequence[Path]  # none: only rebuild the index from the shards
    out: Path
    detector: ModelFile
    embedder: ModelFile
    faces: str = DEFAULT_FACES
    subjects_csv: Path | None = None
    index: IndexChoice = field(default_factory=IndexChoice)
    backend: str = "ort-cpu"
    settings: PipelineSettings = field(default_factory=PipelineSettings)
    runner_options: RunnerOptions = field(default_factory=lambda: RunnerOptions(spin_wait=False))
    photos_per_shard: int = PHOTOS_PER_SHARD
    ray: bool = False
    ray_address: str | None = None  # with ray: None = RAY_ADDRESS or a local instance
    ray_actors: int = 0  # 0: one per GPU of the cluster, or one per 2 CPUs when it has none
    detector_size: tuple[int, int] | None = None  # a detector with a dynamic size runs at this one; None: its own

    def __post_init__(self) -> None:
        if self.faces not in FACES_MODES:
            raise SpecError(f"faces {self.faces} is not one of {', '.join(FACES_MODES)}", field="faces")
        if self.embedder.spec.embedding_size is None:
            raise SpecError(
                f"embedder {self.embedder.path.name} does not say its embedding size; describe it first (a "
                "description of the embedder gives its size)",
                field="embedder",
            )
        if self.photos_per_shard < 1:
            raise SpecError(
                f"photos_per_shard must be at least 1, got {self.photos_per_shard}", field="photos_per_shard"
            )


IndexRequest = IndexJob  # alias for one release (the use case's options are workflows.gallery.IndexOptions)


@dataclass
class IndexSummary:
    gallery: Path
    photos_named: int = 0
    photos_run: int = 0  # new or changed, this run
    photos_unchanged: int = 0
    faces_added: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)  # this run's
    gallery_photos: int = 0
    gallery_faces: int = 0
    shards: int = 0
    index: str = ""
    index_built: bool = False
    where: str = "local"
    cluster: str = ""  # with Ray: the cluster the job used (a local instance on 127.0.0.1, or the address given)
    ray_nodes: list[dict] = field(default_factory=list)  # with Ray: [{node, address, photos}] each node's actors ran
    seconds: float = 0.0
    index_seconds: float = 0.0

    @property
    def photos_per_second(self) -> float:
        run_time = self.seconds - self.index_seconds
        return self.photos_run / run_time if run_time > 0 and self.photos_run else 0.0

    def to_dict(self) -> dict:
        return {
            "gallery": str(self.gallery),
            "photos_named": self.photos_named,
            "photos_run": self.photos_run,
            "photos_unchanged": self.photos_unchanged,
            "faces_added": self.faces_added,
            "failed": self.failed,
            "gallery_photos": self.gallery_photos,
            "gallery_faces": self.gallery_faces,
            "shards": self.shards,
            "index": self.index,
            "index_built": self.index_built,
            "where": self.where,
            "cluster": self.cluster,
            "ray_nodes": self.ray_nodes,
            "seconds": round(self.seconds, 3),
            "photos_per_second": round(self.photos_per_second, 3),
        }


def model_identity(role: str, model: ModelFile, options: RunnerOptions | None = None) -> ModelIdentity:
    """``model`` as a manifest records it, with the precision it computes in under the runners' ``options``."""
    precision = computed_precision(model, options or RunnerOptions())
    spec = spec_to_dict(model.spec)
    return ModelIdentity(role, model.spec.name, str(model.path.resolve()), model.sha256, spec, precision)


def computed_precision(model: ModelFile, options: RunnerOptions) -> str:
    """What the runner computes ``model`` in: bf16 where the runners are told to (its proof was checked by the
    caller), else the file's own precision (fp32, int8 or fp16)."""
    return "bf16" if options.runs_bf16(model) else model.precision


def refuse_other_precision(gallery: Gallery, given: Sequence[ModelIdentity]) -> None:
    """Embeddings computed in two precisions never mix: a model the gallery recorded in bf16 runs in bf16 again, one
    it recorded in its own precision (or before precisions were recorded) never in bf16. A gallery that predates
    the record gets it with this run's next commit."""
    manifest = gallery.manifest
    for identity in given:
        recorded: ModelIdentity = getattr(manifest, identity.role)
        if recorded.mixes_with(identity.precision):
            raise GalleryError(
                f"the gallery {gallery.root} was indexed with its {identity.role} {printable(recorded.name, 80)} "
                f"computing in {recorded.computed}, this run computes it in {identity.precision}; embeddings of two "
                f"precisions must not mix: index with precision {recorded.precision or 'fp32'}, or into another folder",
                field="precision",
            )
        if not recorded.precision:
            setattr(manifest, identity.role, replace(recorded, precision=identity.precision))


def pipeline_settings_record(request: IndexJob) -> dict:
    s = request.settings
    return {
        "detector_size": list(request.detector.checked_size(request.detector_size)),
        "det_thresh": s.det_thresh,
        "nms_thresh": s.nms_thresh,
        "max_faces": s.max_faces,
        "backend": request.backend,
    }


def open_for(request: IndexJob) -> Gallery:
    import_faiss()  # the extra is needed at the end: say so before the slow part
    models = [
        model_identity("detector", request.detector, request.runner_options),
        model_identity("embedder", request.embedder, request.runner_options),
    ]
    gallery = create_or_open(
        request.out,
        *models,
        int(request.embedder.spec.embedding_size or 0),
        request.faces,
        pipeline_settings_record(request),
    )
    refuse_other_precision(gallery, models)
    return gallery


def quarantine_damaged_shards(gallery: Gallery) -> None:
    """A shard that does not read as committed (damaged on disk: its size, its sha256, Parquet, its rows)
    is moved to GALLERY/quarantine, never deleted, and dropped from the manifest: its photos then count
    as new and are indexed again. Said in one line each. Every shard is checked before anything moves:
    one that cannot be read at all (permissions, an I/O error, the shards folder gone) stops the run
    with nothing changed. A sound shard an older manifest lists without its sha256 gets it recorded."""
    damaged: list[tuple[ShardEntry, ShardDamaged]] = []
    recorded = False
    for position, entry in enumerate(gallery.manifest.shards):
        try:
            digest = gallery.verify_shard(position)
        except ShardDamaged as exc:
            damaged.append((entry, exc))
            continue
        if entry.sha256 is None:
            gallery.record_sha256(position, digest)
            recorded = True
    for entry, exc in damaged:
        moved = gallery.quarantine(entry)
        where = f"moved it to {moved}" if moved else "dropped it from the manifest"
        warn(f"{exc.problem}: {where}; its photos are indexed again")
    if damaged:
        gallery.drop_shards({entry.name for entry, _ in damaged})
    if damaged or recorded:
        gallery.save()


def run_locally(request: IndexJob, gallery: Gallery, todo: list[Photo], states: dict[str, PhotoState]) -> int:
    """Run the pipeline over ``todo``, committing a shard every ``photos_per_shard`` photos; the
    faces added."""
    size = int(request.embedder.spec.embedding_size or 0)
    best_only = request.faces == "best"
    added = 0
    with open_pipeline(
        request.detector,
        request.embedder,
        request.backend,
        request.settings,
        request.runner_options,
        request.detector_size,
    ) as pipeline:
        with progress_bar(len(todo), "index") as advance:
            for start in range(0, len(todo), request.photos_per_shard):
                chunk = todo[start : start + request.photos_per_shard]
                results = []
                for result in pipeline.run([Path(p.path) for p in chunk]):
                    results.append(result)
                    if not result.ok:
                        warn(f"skipped {result.path}: {result.error}", result.error_field)
                    advance(
                        f"{result.path.name}: {counted(len(result), 'face')}"
                        if result.ok
                        else f"{result.path.name}: skipped"
                    )
                table = shard_table(results, chunk, size, best_only)
                added += gallery.commit([gallery.write_shard(table)], states)
    return added


def rebuild_index(gallery: Gallery, choice: IndexChoice, states: dict[str, PhotoState], threads: int = 0) -> str:
    """Build the FAISS index over the live face rows, write it, record it; its description."""
    ids, vectors = [], []
    for chunk_ids, chunk_vectors in gallery.live_faces(states):
        ids.append(chunk_ids)
        vectors.append(chunk_vectors)
    dimension = gallery.manifest.embedding_size
    all_ids = np.concatenate(ids) if ids else np.zeros(0, np.int64)
    all_vectors = np.concatenate(vectors) if vectors else np.zeros((0, dimension), np.float32)
    built = build_measured(choice, all_ids, all_vectors, threads)  # a recall target out of reach stops here
    written = write_index(built.index, gallery.index_path)  # bytes (and where a re-ranked index's vectors begin)
    gallery.manifest.faces = len(all_ids)
    gallery.manifest.index = {
        "type": built.kind,
        "asked": choice.kind,  # auto, or the kind named
        "faiss": built.description,
        "parameters": built.values,
        "recall": built.measured,  # measured on held-out queries (engines/gallery/recall.py); flat: exact
        "metric": "inner product (cosine: embeddings are unit length)",
        "rows": len(all_ids),
        "shards": len(gallery.manifest.shards),  # the shards it covers: fewer than the manifest's = stale
        "dimension": dimension,
        **written,
    }
    gallery.refresh_counts(states)
    gallery.save()
    return gallery.manifest.index["faiss"]


def index_is_current(gallery: Gallery, choice: IndexChoice) -> bool:
    recorded = gallery.manifest.index
    if recorded is None or not gallery.index_path.is_file():
        return False
    if (
        recorded.get("shards") != len(gallery.manifest.shards)
        or recorded.get("asked", recorded.get("type")) != choice.kind
    ):
        return False
    target = recorded.get("recall", {}).get("target")
    if target is not None and target != choice.recall:  # measured against another target: tune again
        return False
    asked = {k: v for k, v in choice.parameters.items() if v}
    return all(recorded.get("parameters", {}).get(k) == v for k, v in asked.items())


def index_photos(request: IndexJob) -> IndexSummary:
    began = time.perf_counter()
    photos = collect_photos(request.photos, request.subjects_csv) if request.photos else []
    gallery = open_for(request)
    summary = IndexSummary(Path(request.out), photos_named=len(photos), where="ray" if request.ray else "local")
    with gallery.writing():
        quarantine_damaged_shards(gallery)
        states = gallery.photo_states()
        todo = photos_to_index(photos, states)
        summary.photos_unchanged = len(photos) - len(todo)
        if todo and request.ray:
            from facebatch.engines.gallery.ray_job import run_on_ray

            ran = run_on_ray(request, gallery, todo, states)
            summary.faces_added, summary.cluster, summary.ray_nodes = ran.faces, ran.cluster, ran.nodes
        elif todo:
            summary.faces_added = run_locally(request, gallery, todo, states)
        summary.photos_run = len(todo)
        done = {p.path for p in todo}
        summary.failed = [f for f in gallery.manifest.failed if f["photo"] in done]
        index_began = time.perf_counter()
        if todo or not index_is_current(gallery, request.index) or not request.photos:
            summary.index = rebuild_index(gallery, request.index, states, request.runner_options.threads or 0)
            summary.index_built = True
        else:
            summary.index = gallery.manifest.index["faiss"] if gallery.manifest.index else ""
        summary.index_seconds = time.perf_counter() - index_began
        if not gallery.manifest.faces and not photos:
            raise GalleryError(f"gallery {request.out} holds no face; index photos with faces into it")
    summary.gallery_photos = gallery.manifest.photos
    summary.gallery_faces = gallery.manifest.faces
    summary.shards = len(gallery.manifest.shards)
    summary.seconds = time.perf_counter() - began
    return summary
