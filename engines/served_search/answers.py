"""face_search's answer: per photo of the request, one JSON document (a BYTES row, so the output keeps the
request's batch axis): its faces in the pipeline's order, each with its box, score, answer and top-k gallery
matches, in the words ``search --json`` uses (``QueryFace``/``Match``), so a client reads the same records.

JSON rather than tensors: a photo has any number of faces and a match carries text (subject, photo path); as
tensors that would be several padded arrays per field, and a subject or a path has no fixed width."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np

from facebatch.core.errors import SpecError
from facebatch.engines.gallery.search import Match, QueryFace

MATCHES_OUTPUT = "MATCHES"  # face_search's one output: per photo, its faces and their matches as JSON (BYTES)
# the face pipeline's outputs face_search asks for: which photo, box, score, embedding
PIPELINE_OUTPUTS = ("FACE_IMAGE_INDEX", "BOXES", "SCORES", "EMBEDDINGS")
Searcher = Callable[[np.ndarray], list[list[Match]]]  # embeddings → each one's matches


def photo_count(images: np.ndarray) -> int:
    """The photos of a request (its IMAGES rows)."""
    if images.ndim == 0 or images.shape[0] < 1:
        raise SpecError("the request holds no photo; send encoded photos as IMAGES, one per row")
    return int(images.shape[0])


def face_rows(outputs: dict[str, np.ndarray], photos: int) -> dict[str, np.ndarray]:
    """The pipeline's outputs, checked to be one row per face of one of the request's photos."""
    index = np.asarray(outputs["FACE_IMAGE_INDEX"]).reshape(-1).astype(np.int64)
    rows = {name: np.asarray(outputs[name]) for name in PIPELINE_OUTPUTS}
    if any(len(array) != len(index) for array in rows.values()) or (
        len(index) and not 0 <= index.min() <= index.max() < photos
    ):
        raise SpecError(f"face_pipeline answered rows that are not one per face of the request's {photos} photos")
    return {**rows, "FACE_IMAGE_INDEX": index}


def photo_answers(outputs: dict[str, np.ndarray], photos: int, search: Searcher) -> np.ndarray:
    """One JSON document per photo (an object array [photos, 1]: face_search's MATCHES output)."""
    rows = face_rows(outputs, photos)
    index = rows["FACE_IMAGE_INDEX"]
    matches = search(rows["EMBEDDINGS"]) if len(index) else []
    answers: list[dict[str, Any]] = [{"photo": p, "faces": []} for p in range(photos)]
    for row, photo in enumerate(index.tolist()):
        faces = answers[photo]["faces"]
        box = [round(float(v), 2) for v in rows["BOXES"][row]]
        query = QueryFace(f"photo {photo}", len(faces), box, matches[row])
        face = {key: value for key, value in query.to_dict().items() if key != "query"}
        faces.append({**face, "score": round(float(np.asarray(rows["SCORES"][row]).reshape(-1)[0]), 4)})
    return np.array([[json.dumps(answer).encode("utf-8")] for answer in answers], dtype=object)
