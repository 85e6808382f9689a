"""What the pipeline commands write: faces per photo as JSON, embeddings as ``.npz`` with an
index, and annotated copies of the photos. Plain data in, bytes or text out; the commands
write them atomically."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from facebatch.core.errors import SpecError
from facebatch.engines.pipeline.image_faces import ImageFaces

BOX_COLOUR = (0, 200, 0)  # BGR
LANDMARK_COLOURS = ((0, 0, 255), (0, 255, 255), (255, 0, 255), (0, 255, 0), (255, 0, 0))  # eyes, nose, mouth corners


def face_records(result: ImageFaces) -> list[dict[str, Any]]:
    """One photo's faces: bbox [x1, y1, x2, y2], score, landmarks [[x, y] × 5] in its pixels."""
    if result.faces is None:
        return []
    faces = result.faces
    records = []
    for i in range(len(faces)):
        record: dict[str, Any] = {
            "bbox": [round(float(v), 2) for v in faces.boxes[i]],
            "score": round(float(faces.scores[i]), 5),
        }
        if faces.landmarks is not None:
            record["landmarks"] = [[round(float(x), 2), round(float(y), 2)] for x, y in faces.landmarks[i]]
        records.append(record)
    return records


def detections_json(results: Sequence[ImageFaces], about: dict[str, Any]) -> str:
    images = []
    for r in results:
        entry: dict[str, Any] = {"path": str(r.path)}
        if r.ok:
            assert r.image_size is not None
            entry |= {"height": r.image_size[0], "width": r.image_size[1], "faces": face_records(r)}
        else:
            entry["error"] = r.error
        images.append(entry)
    failed = [str(r.path) for r in results if not r.ok]
    return (
        json.dumps({**about, "images": images, "faces": sum(len(r) for r in results), "failed": failed}, indent=2)
        + "\n"
    )


def embeddings_npz(
    results: Sequence[ImageFaces], models: dict[str, str] | None = None, precisions: dict[str, str] | None = None
) -> bytes:
    """Every face of every photo, one row each: ``embeddings`` [F, D] (unit length),
    ``image_index`` [F] into ``images``, ``boxes`` [F, 4], ``scores`` [F], ``landmarks`` [F, 5, 2];
    ``detector_sha256`` / ``embedder_sha256`` from ``models`` and ``detector_precision`` /
    ``embedder_precision`` (what each computed in) from ``precisions``: what search checks against a
    gallery (embeddings of two models, or of BF16 and another precision, must not mix)."""
    read = [r for r in results if r.ok]
    width = next((r.embeddings.shape[1] for r in read if r.embeddings is not None and r.embeddings.ndim == 2), 0)
    rows = [r.embeddings for r in read if r.embeddings is not None and len(r)]
    arrays = {
        "images": np.array([str(r.path) for r in read], dtype=str),
        "image_index": np.concatenate([np.full(len(r), i, dtype=np.int32) for i, r in enumerate(read)])
        if read
        else np.zeros(0, np.int32),
        "embeddings": np.concatenate(rows).astype(np.float32) if rows else np.zeros((0, width), np.float32),
        "boxes": np.concatenate([r.faces.boxes for r in read if r.faces is not None])
        if read
        else np.zeros((0, 4), np.float32),
        "scores": np.concatenate([r.faces.scores for r in read if r.faces is not None])
        if read
        else np.zeros(0, np.float32),
        "landmarks": np.concatenate(
            [r.faces.landmarks for r in read if r.faces is not None and r.faces.landmarks is not None]
        )
        if read
        else np.zeros((0, 5, 2), np.float32),
    }
    for role, sha256 in (models or {}).items():
        arrays[f"{role}_sha256"] = np.array(sha256)
    for role, precision in (precisions or {}).items():
        arrays[f"{role}_precision"] = np.array(precision)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def embeddings_index(results: Sequence[ImageFaces], npz_name: str, about: dict[str, Any]) -> str:
    """The rows of the ``.npz`` for people: which photo and face each row is."""
    rows, row = [], 0
    for r in results:
        for record in face_records(r):
            rows.append({"row": row, "image": str(r.path), **record})
            row += 1
    failed = [str(r.path) for r in results if not r.ok]
    return json.dumps({**about, "embeddings": npz_name, "faces": rows, "failed": failed}, indent=2) + "\n"


def draw_faces(image: np.ndarray, result: ImageFaces) -> np.ndarray:
    """A copy of ``image`` with each face's box, score and landmarks drawn."""
    canvas = image.copy()
    if result.faces is None:
        return canvas
    thickness = max(1, round(max(image.shape[:2]) / 500))
    for i in range(len(result.faces)):
        x1, y1, x2, y2 = (int(round(float(v))) for v in result.faces.boxes[i])
        cv2.rectangle(canvas, (x1, y1), (x2, y2), BOX_COLOUR, thickness)
        cv2.putText(
            canvas,
            f"{float(result.faces.scores[i]):.2f}",
            (x1, max(0, y1 - 4)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.4 * thickness,
            BOX_COLOUR,
            thickness,
        )
        if result.faces.landmarks is not None:
            for (x, y), colour in zip(result.faces.landmarks[i], LANDMARK_COLOURS, strict=False):
                cv2.circle(canvas, (int(round(float(x))), int(round(float(y)))), thickness + 1, colour, -1)
    return canvas


def drawn_name(path: Path, taken: set[str]) -> str:
    """The annotated copy's file name: the photo's, made unique among those already written."""
    name, counter = path.name, 2
    while name in taken:
        name = f"{path.stem}_{counter}{path.suffix}"
        counter += 1
    taken.add(name)
    return name


def encode_image(image: np.ndarray, name: str) -> bytes:
    suffix = Path(name).suffix.lower() or ".png"
    ok, encoded = cv2.imencode(
        suffix if suffix in (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff") else ".png", image
    )
    if not ok:
        raise SpecError(f"cannot encode the annotated copy of {name}")
    return encoded.tobytes()
