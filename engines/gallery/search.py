"""``facebatch search``: the gallery faces nearest to each query face, by cosine.

A query is a photo (run through the gallery's own detector and embedder: the manifest names
them, by sha256) or an ``.npz`` that ``facebatch embed`` wrote with the same models.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facebatch.core.errors import SpecError
from facebatch.core.filetypes import file_kind
from facebatch.core.trusted_paths import printable
from facebatch.engines.gallery.errors import GalleryError
from facebatch.engines.gallery.faiss_index import read_index, set_search_parameters
from facebatch.engines.gallery.manifest import RECORDED_PRECISIONS, ModelIdentity
from facebatch.engines.gallery.store import Gallery

UNKNOWN = "unknown"
QUERIES_TAKEN = "search takes photos, folders of photos, or the .npz of embeddings that embed writes"


@dataclass(frozen=True)
class Match:
    rank: int
    cosine: float
    record: dict[str, Any]  # row, photo, face, subject, box, score
    known: bool  # cosine ≥ the threshold

    def to_dict(self) -> dict[str, Any]:
        return {"rank": self.rank, "cosine": round(self.cosine, 5), "match": self.known, **self.record}


@dataclass
class QueryFace:
    source: str  # the query photo or .npz
    face: int  # its index in the source
    box: list[float] | None  # None for an .npz row without one
    matches: list[Match] = field(default_factory=list)

    @property
    def answer(self) -> str:
        """The subject of the best match at or above the threshold (its photo when it has none), else unknown."""
        if not self.matches or not self.matches[0].known:
            return UNKNOWN
        best = self.matches[0].record
        return best["subject"] or Path(best["photo"]).name

    def to_dict(self) -> dict[str, Any]:
        return {
            "query": self.source,
            "face": self.face,
            "box": self.box,
            "answer": self.answer,
            "matches": [m.to_dict() for m in self.matches],
        }


class GallerySearch:
    """An open gallery with its index read, ready for queries."""

    def __init__(self, root: Path) -> None:
        self.gallery = Gallery.open(root)
        manifest = self.gallery.manifest
        hint = self.gallery.rebuild_index_hint
        recorded = manifest.index
        if recorded is None:
            raise GalleryError(f"{root} has no index yet (a run was stopped before it was built); {hint}")
        if recorded.get("shards") != len(manifest.shards):
            raise GalleryError(
                f"{root}'s index covers {recorded.get('shards')} of its {len(manifest.shards)} shards (a run was stopped "
                f"before it was built again); {hint}"
            )
        if not recorded.get("rows"):
            raise GalleryError(f"gallery {root} holds no face; index photos with faces into it", field="gallery")
        self.index = read_index(self.gallery.index_path, recorded, hint)
        if self.index.d != manifest.embedding_size:  # else a query of the manifest's size trips FAISS's assert
            raise GalleryError(
                f"the gallery's index {self.gallery.index_path} is corrupt (it holds {self.index.d}-d faces, the "
                f"manifest {manifest.embedding_size}-d embeddings); {hint}"
            )
        set_search_parameters(self.index, recorded["type"], recorded.get("parameters", {}))

    @property
    def dimension(self) -> int:
        return self.gallery.manifest.embedding_size

    def search(self, vectors: np.ndarray, top_k: int, threshold: float) -> list[list[Match]]:
        if top_k < 1:
            raise SpecError(f"top_k must be at least 1, got {top_k}", field="top_k")
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(vectors), -1)
        if vectors.shape[1] != self.dimension:
            raise SpecError(f"the queries are {vectors.shape[1]}-d, the gallery's embeddings {self.dimension}-d")
        if not len(vectors):
            return []
        scores, ids = self.index.search(vectors, min(top_k, self.index.ntotal))
        found = []
        for row_scores, row_ids in zip(scores, ids, strict=True):
            found.append(
                [
                    Match(rank, float(score), self.gallery.face_record(int(row)), float(score) >= threshold)
                    for rank, (score, row) in enumerate(zip(row_scores, row_ids, strict=True), start=1)
                    if row >= 0
                ]
            )
        return found


def npz_queries(path: Path, gallery: Gallery) -> tuple[np.ndarray, list[int], list[list[float] | None]]:
    """The embeddings of an ``embed`` .npz, refused unless made with the gallery's models."""
    if not zipfile.is_zipfile(path):  # numpy would try it as a pickle, and advise loading it unsafely
        kind = file_kind(path) or "not a zip archive"
        raise SpecError(f"query {path} is not an .npz of embeddings (it is {kind}); {QUERIES_TAKEN}", field="queries")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise SpecError(
            f"query {path} is not an .npz of embeddings ({printable(str(exc), 120)}); {QUERIES_TAKEN}", field="queries"
        ) from None
    if "embeddings" not in arrays:
        raise SpecError(f"query {path} holds no 'embeddings'; embed the photos into an .npz", field="queries")
    manifest = gallery.manifest
    for role, identity in (("detector", manifest.detector), ("embedder", manifest.embedder)):
        recorded = arrays.get(f"{role}_sha256")
        if recorded is None:
            raise SpecError(
                f"query {path} does not say which {role} made it (an older facebatch wrote it); embed the photos "
                "again, or search the photos themselves",
                field="queries",
            )
        if str(recorded) != identity.sha256:
            raise SpecError(
                f"query {path} was made with another {role} (sha256 {printable(str(recorded)[:12], 20)}…) than the "
                f"gallery's {printable(identity.name, 80)} ({identity.sha256[:12]}…); embeddings of two models must "
                "not mix",
                field="queries",
            )
        precision = str(arrays.get(f"{role}_precision", ""))  # absent: an older embed, the file's own
        if precision not in RECORDED_PRECISIONS:
            raise SpecError(
                f"query {path} records a {role} precision facebatch does not write ({printable(precision, 20)}); "
                "embed the photos again",
                field="queries",
            )
        computed = precision or "its file's own precision"
        check_precision(identity, precision, f"query {path} computed it in {computed}", "embed the photos again with")
    boxes = arrays.get("boxes")
    rows = len(arrays["embeddings"])
    image_index = arrays.get("image_index", np.zeros(rows, np.int32))
    faces, previous, count = [], None, 0
    for image in image_index.tolist():
        count = count + 1 if image == previous else 0
        previous = image
        faces.append(count)
    shown = [[round(float(v), 2) for v in boxes[i]] if boxes is not None else None for i in range(rows)]
    return arrays["embeddings"], faces, shown


def check_gallery_models(gallery: Gallery, detector, embedder, computed: Mapping[str, str] | None = None) -> None:
    """Refuse models other than those the gallery was built with (by sha256), or computing in another precision
    than it recorded (``computed``: per role what the query's runner computes in; bf16 or not must agree)."""
    manifest = gallery.manifest
    for model, identity in ((detector, manifest.detector), (embedder, manifest.embedder)):
        if model.sha256 != identity.sha256:
            raise SpecError(
                f"{identity.role} {model.path} is not the one the gallery was built with ({printable(identity.name, 80)}, "
                f"sha256 {identity.sha256[:12]}…): embeddings of two models must not mix; pass "
                f"{printable(identity.file)}",
                field=identity.role,
            )
        precision = (computed or {}).get(identity.role, model.precision)
        check_precision(identity, precision, f"search would compute it in {precision}", "search with")


def check_precision(identity: ModelIdentity, precision: str, query: str, advice: str) -> None:
    """Embeddings computed in BF16 and in the file's own precision never mix: refused in one line (``query``: what
    the query did; ``advice``: what to run again, ending before the precision)."""
    if identity.mixes_with(precision):
        asked = "bf16 (on the openvino backend)" if identity.precision == "bf16" else "fp32, int8 or auto"
        raise SpecError(
            f"the gallery's {identity.role} {printable(identity.name, 80)} computed in {identity.computed} when it was "
            f"indexed; {query}: embeddings of two precisions must not mix; {advice} precision {asked}",
            field="precision",
        )


@dataclass
class PhotoQueries:
    faces: list[QueryFace] = field(default_factory=list)
    vectors: list[np.ndarray] = field(default_factory=list)
    no_face: list[str] = field(default_factory=list)
    unreadable: list[dict[str, str]] = field(default_factory=list)


def photo_queries(pipeline, paths: list[Path]) -> PhotoQueries:  # FacePipeline
    """Every face of the query photos, with its embedding; photos without a face or unreadable, named."""
    found = PhotoQueries()
    for result in pipeline.run(paths):
        if not result.ok:
            found.unreadable.append(
                {"photo": str(result.path), "error": str(result.error), "field": result.error_field or ""}
            )
        elif not len(result):
            found.no_face.append(str(result.path))
        else:
            assert result.faces is not None and result.embeddings is not None
            for face in range(len(result)):
                box = [round(float(v), 2) for v in result.faces.boxes[face]]
                found.faces.append(QueryFace(str(result.path), face, box))
                found.vectors.append(result.embeddings[face])
    return found
