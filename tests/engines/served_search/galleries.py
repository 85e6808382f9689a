"""Small real galleries for the served-search unit tests: shards of synthetic unit vectors committed and indexed with
the gallery's own writer (engines/gallery), named models that exist only by sha256."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("faiss", reason="the index extra (faiss-cpu) builds the gallery's index")
pa = pytest.importorskip("pyarrow", reason="the index extra (pyarrow) writes the gallery's shards")

from facebatch.engines.gallery.faiss_index import IndexChoice  # noqa: E402
from facebatch.engines.gallery.index_job import rebuild_index  # noqa: E402
from facebatch.engines.gallery.manifest import ModelIdentity  # noqa: E402
from facebatch.engines.gallery.store import Gallery, create_or_open  # noqa: E402
from facebatch.engines.gallery.table import shard_schema  # noqa: E402

DIMENSION = 8
SHA256 = {"detector": "d" * 64, "embedder": "e" * 64}
DETECTOR_SIZE = [640, 640]


def unit(seed: int) -> np.ndarray:
    vector = np.random.default_rng(seed).standard_normal(DIMENSION).astype(np.float32)
    return vector / np.linalg.norm(vector)


def shard(subjects: dict[str, np.ndarray]) -> pa.Table:
    """One face per subject's photo (``<subject>.jpg``), its embedding given."""
    rows = len(subjects)
    schema = shard_schema(DIMENSION)
    fixed = {"box": 4, "landmarks": 10}
    columns = {
        "photo": [f"/photos/{s}.jpg" for s in subjects],
        "face": [0] * rows,
        "subject": list(subjects),
        "size": [1000] * rows,
        "mtime_ns": [1] * rows,
        "score": [0.9] * rows,
        "error": [None] * rows,
        **{name: [[float(v) for v in range(width)]] * rows for name, width in fixed.items()},
        "embedding": [vector.tolist() for vector in subjects.values()],
    }
    return pa.table({field.name: pa.array(columns[field.name], field.type) for field in schema}, schema=schema)


def new_gallery(root: Path, sha256: dict[str, str] = SHA256, precision: str = "fp32") -> Gallery:
    identities = {
        role: ModelIdentity(role, f"{role}-model", f"/models/{role}.onnx", sha, {}, precision)
        for role, sha in sha256.items()
    }
    settings = {"detector_size": DETECTOR_SIZE}
    return create_or_open(root, identities["detector"], identities["embedder"], DIMENSION, "all", settings)


def commit(gallery: Gallery, subjects: dict[str, np.ndarray], index: bool = True) -> None:
    """Commit one shard of ``subjects``; with ``index``, the index over every shard too (as index's run ends)."""
    with gallery.writing():
        states = gallery.photo_states()
        gallery.commit([gallery.write_shard(shard(subjects))], states)
        if index:
            rebuild_index(gallery, IndexChoice("flat"), states)
