"""face_search's answer: per photo of the request, one JSON document (a BYTES row, so the output keeps the
request's batch axis): its faces in the pipeline's order, each with its box, score, answer and top-k gallery
matches, in the words ``search --json`` uses (``QueryFace``/``Match``), so a client reads the same records.

JSON rather than tensors: a photo has any number of faces and a match carries text (subject, photo path); as
tensors that would be several padded arrays per field, and a subject or a path has no fixed width."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import numpy as np

from facebatch.core.errors import SpecError
from facebatch.core.trusted_paths import printable
from facebatch.engines.gallery.search import Match, QueryFace

MATCHES_OUTPUT = "MATCHES"  # face_search's one output: per photo, its faces and their matches as JSON (BYTES)
# the face pipeline's outputs face_search asks for: which photo, box, score, embedding
PIPELINE_OUTPUTS = ("FACE_IMAGE_INDEX", "BOXES", "SCORES", "EMBEDDINGS")
Searcher = Callable[[np.ndarray], list[list[Match]]]  # embeddings → each one's matches
MAX_TOP_K = 100  # a request's top_k at most: each match is ~0.3 KB of JSON per face, and the answer is bounded too
# Triton's own request parameters (its parameters extension reserves these and every "triton_" name)
TRITON_PARAMETERS = ("sequence_id", "priority", "timeout", "sequence_start", "sequence_end", "headers")


def request_choices(parameters: str, top_k: int, threshold: float) -> tuple[int, float]:
    """A request's own ``top_k`` and ``threshold`` (Triton request parameters, as the python backend gives them:
    JSON), else the model's; anything else a client sends is refused by name."""
    try:
        given = json.loads(parameters or "{}")
    except (ValueError, RecursionError):
        given = None
    if not isinstance(given, dict):
        raise SpecError("the request's parameters are not a JSON object of names and values")
    takes = f"face_search takes the request parameters top_k (1 to {MAX_TOP_K}) and threshold (a cosine, -1 to 1)"
    unknown = sorted(
        k for k in given if k not in ("top_k", "threshold", *TRITON_PARAMETERS) and not k.startswith("triton_")
    )
    if unknown:
        raise SpecError(f"{takes}, not {', '.join(printable(k, 40) for k in unknown[:3])}")
    top_k = given.get("top_k", top_k)
    if isinstance(top_k, str) and re.fullmatch(r"\s*[0-9]{1,4}\s*", top_k):  # ASCII digits ("²".isdigit() is true)
        top_k = int(top_k)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
        raise SpecError(f"{takes}; top_k {printable(str(top_k), 40)} is not a whole number from 1 to {MAX_TOP_K}")
    threshold = given.get("threshold", threshold)
    try:
        threshold = float(threshold) if not isinstance(threshold, bool) else None
    except (TypeError, ValueError, OverflowError):  # OverflowError: a JSON integer past a float's range
        threshold = None
    if threshold is None or not -1.0 <= threshold <= 1.0:
        raise SpecError(f"{takes}; threshold {printable(str(given['threshold']), 40)} is not a cosine from -1 to 1")
    return top_k, threshold


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
