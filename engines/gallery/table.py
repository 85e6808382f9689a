"""A shard's rows as an Arrow table: one row per face, and one per photo that has none (``face``
-1: no face found, or ``error`` set: could not be read). Every row carries its photo's size and
modification time and subject, so a shard alone says what it covers.

Written by the local run and by Ray's workers alike: the same function makes both."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from facebatch.engines.gallery.photos import Photo
from facebatch.engines.pipeline.image_faces import ImageFaces

NO_FACE = -1


def shard_schema(embedding_size: int) -> pa.Schema:
    return pa.schema(
        [
            ("photo", pa.string()),
            ("face", pa.int32()),  # index within the photo, best score first; -1: a row for a photo without faces
            ("subject", pa.string()),
            ("size", pa.int64()),
            ("mtime_ns", pa.int64()),
            ("box", pa.list_(pa.float32(), 4)),  # x1, y1, x2, y2 in photo pixels
            ("score", pa.float32()),
            ("landmarks", pa.list_(pa.float32(), 10)),  # 5 × (x, y)
            ("embedding", pa.list_(pa.float32(), embedding_size)),  # unit length
            ("error", pa.string()),
        ]
    )


METADATA_COLUMNS = ("photo", "face", "subject", "box", "score")  # what search shows; embeddings stay on disk


def _fixed(values: np.ndarray, width: int, valid: np.ndarray) -> pa.Array:
    flat = pa.array(np.ascontiguousarray(values, dtype=np.float32).reshape(-1))
    return pa.FixedSizeListArray.from_arrays(flat, width, mask=pa.array(~valid))


def shard_table(
    results: Sequence[ImageFaces], photos: Sequence[Photo], embedding_size: int, best_only: bool
) -> pa.Table:
    """The rows of photos just run (``results[i]`` is ``photos[i]``'s)."""
    columns: dict[str, list] = {name: [] for name in ("photo", "face", "subject", "size", "mtime_ns", "score", "error")}
    boxes, landmarks, embeddings, valid = [], [], [], []
    for result, photo in zip(results, photos, strict=True):
        count = len(result) if result.ok else 0
        if best_only:
            count = min(count, 1)
        for face in range(count) if count else [NO_FACE]:
            columns["photo"].append(photo.path)
            columns["face"].append(face)
            columns["subject"].append(photo.subject)
            columns["size"].append(photo.size)
            columns["mtime_ns"].append(photo.mtime_ns)
            columns["error"].append(None if result.ok else result.error)
            if face == NO_FACE:
                columns["score"].append(None)
                boxes.append(np.zeros(4, np.float32))
                landmarks.append(np.zeros(10, np.float32))
                embeddings.append(np.zeros(embedding_size, np.float32))
                valid.append(False)
                continue
            assert result.faces is not None and result.embeddings is not None
            columns["score"].append(float(result.faces.scores[face]))
            boxes.append(result.faces.boxes[face])
            marks = result.faces.landmarks
            landmarks.append(marks[face].reshape(-1) if marks is not None else np.zeros(10, np.float32))
            embeddings.append(result.embeddings[face])
            valid.append(True)
    ok = np.array(valid, dtype=bool)
    schema = shard_schema(embedding_size)
    if not ok.size:
        return schema.empty_table()
    arrays = {
        "photo": pa.array(columns["photo"], pa.string()),
        "face": pa.array(columns["face"], pa.int32()),
        "subject": pa.array(columns["subject"], pa.string()),
        "size": pa.array(columns["size"], pa.int64()),
        "mtime_ns": pa.array(columns["mtime_ns"], pa.int64()),
        "box": _fixed(np.stack(boxes), 4, ok),
        "score": pa.array(columns["score"], pa.float32()),
        "landmarks": _fixed(np.stack(landmarks), 10, ok),
        "embedding": _fixed(np.stack(embeddings), embedding_size, ok),
        "error": pa.array(columns["error"], pa.string()),
    }
    return pa.table(arrays, schema=schema)


def fixed_rows(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A fixed-size-list column as [rows, width] float32 (a null row's values are whatever the
    file holds there: callers take face rows only)."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    width = array.type.list_size
    values = array.values.to_numpy(zero_copy_only=False)
    start = array.offset * width
    return values[start : start + len(array) * width].reshape(len(array), width).astype(np.float32, copy=False)
