"""The memory-bounded gallery index (``ivfpq_refine``): IVF-PQ codes in memory find candidates, and the
full vectors, memory-mapped from the index file, re-rank them exactly.

IVF-PQ alone cannot reach recall@1 0.99 on faces (its 64-byte codes reorder near-identical photos of one
person: recall@1 ~0.3 on the benchmark's fresh photos, recall@10 0.99), so the true nearest face is among
its candidates but rarely first; the exact cosine of ``rerank`` candidates puts it first. FAISS's
``IndexRefineFlat`` does the same with the vectors in memory (the flat index's size, which is what this
index is for avoiding); here they stay on disk and only the candidates' pages are read.

One file holds both, so that one atomic rename replaces them together (a reader never pairs new codes
with old vectors): FAISS's serialized IVF-PQ, zero padding to a page, then the ids (int64, ascending) and
their vectors (float32, [rows, dimension]). The manifest records where the ids begin.
"""

from __future__ import annotations

import mmap
import os
from pathlib import Path

import numpy as np

PAGE = 4096  # the ids begin at a page boundary: the vectors' memory map then starts near one


class RerankedIndex:
    """An IVF-PQ index whose candidates are re-ranked by exact inner product with the stored vectors.
    Searches like a FAISS index (``search(queries, k)`` → scores, ids; ``ntotal``)."""

    def __init__(self, index, ids: np.ndarray, vectors: np.ndarray, rerank: int) -> None:
        self.index = index  # the FAISS IndexIVFPQ (nprobe is set on it)
        self.ids = ids  # ascending
        self.vectors = vectors  # row i is the vector of ids[i]: in memory while building, memory-mapped once read
        self.rerank = rerank  # candidates taken from the codes per query (at least k)

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        wanted = max(1, min(max(k, self.rerank), self.ntotal))
        _, candidates = self.index.search(queries, wanted)
        valid = candidates >= 0
        at = np.clip(np.searchsorted(self.ids, np.where(valid, candidates, 0)), 0, len(self.ids) - 1)
        valid &= self.ids[at] == candidates
        scores = np.full(candidates.shape, -np.inf, np.float32)
        for q in range(len(queries)):  # one query's candidates at a time: [rerank, D] read from the map
            rows = at[q, valid[q]]
            order = np.argsort(rows, kind="stable")  # in file order: the map reads forward
            scores[q, np.flatnonzero(valid[q])[order]] = self.vectors[rows[order]] @ queries[q]
        best = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        found = np.take_along_axis(np.where(valid, candidates, -1), best, axis=1)
        return np.take_along_axis(scores, best, axis=1), found


def sorted_by_id(ids: np.ndarray, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ids = np.asarray(ids, np.int64)
    if len(ids) > 1 and not np.all(ids[1:] > ids[:-1]):
        order = np.argsort(ids, kind="stable")
        return ids[order], np.ascontiguousarray(vectors[order], dtype=np.float32)
    return ids, np.ascontiguousarray(vectors, dtype=np.float32)


def vectors_offset(serialized_bytes: int) -> int:
    """Where the ids begin after ``serialized_bytes`` of FAISS's index: the next page boundary."""
    return -(-serialized_bytes // PAGE) * PAGE


def write_reranked(index: RerankedIndex, serialized: np.ndarray, path: Path) -> int:
    """FAISS's ``serialized`` codes, padding, ids and vectors into ``path`` (a temp file of the caller's atomic
    write); where the ids begin."""
    offset = vectors_offset(len(serialized))
    with open(path, "wb") as out:
        out.write(serialized.tobytes())
        out.write(bytes(offset - len(serialized)))
        out.write(np.ascontiguousarray(index.ids, dtype="<i8").tobytes())
        for start in range(0, len(index.ids), 65536):  # in blocks: a copy of 1M × 512 floats would be 2 GB
            out.write(np.ascontiguousarray(index.vectors[start : start + 65536], dtype="<f4").tobytes())
        out.flush()
        os.fsync(out.fileno())
    return offset


def expected_size(offset: int, rows: int, dimension: int) -> int:
    return offset + rows * 8 + rows * dimension * 4


def map_vectors(handle, offset: int, rows: int, dimension: int) -> tuple[np.ndarray, np.ndarray]:
    """The ids (read, checked ascending) and the vectors (memory-mapped, read-only) from an open index file
    whose size the caller has checked against ``expected_size``. ValueError when the ids are not ascending."""
    handle.seek(offset)
    ids = np.frombuffer(handle.read(rows * 8), dtype="<i8").astype(np.int64)
    if len(ids) != rows or (rows > 1 and not np.all(ids[1:] > ids[:-1])):
        raise ValueError("its face ids are not in ascending order")
    vectors = np.memmap(handle, dtype="<f4", mode="r", offset=offset + rows * 8, shape=(rows, dimension))
    mapped = getattr(vectors, "_mmap", None)
    if mapped is not None and hasattr(mapped, "madvise"):
        # candidates are scattered: no read-ahead, and no fault-around mapping neighbours nobody asked for into
        # the process's resident set
        mapped.madvise(mmap.MADV_RANDOM)
    return ids, vectors
