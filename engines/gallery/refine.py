"""The memory-bounded gallery index (``ivfpq_refine``): IVF-PQ codes in memory find candidates, and the
full vectors, read from the index file on disk (only the candidates' rows), re-rank them exactly.

IVF-PQ alone cannot reach recall@1 0.99 on faces (its 64-byte codes reorder near-identical photos of one
person: recall@1 ~0.3 on the benchmark's fresh photos, recall@10 0.99), so the true nearest face is among
its candidates but rarely first; the exact cosine of ``rerank`` candidates puts it first. FAISS's
``IndexRefineFlat`` does the same with the vectors in memory (the flat index's size, which is what this
index is for avoiding); here they stay on disk and only the candidates' rows are read, each with one
positional read (``os.pread``). Not a memory map: the kernel's fault-around maps the 16 pages around each page
touched when they are in the page cache, and the index file just written is; measured at 1M × 512-d, a
search process that memory-mapped the vectors held 1,957 MiB of them resident after 1,640 queries (all of
them, where the candidates' rows are 16 %), against 111 MiB of its own.

One file holds both, so that one atomic rename replaces them together (a reader never pairs new codes
with old vectors): FAISS's serialized IVF-PQ, zero padding to a page, then the ids (int64, ascending) and
their vectors (float32, [rows, dimension]). The manifest records where the ids begin.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np

from facebatch.engines.gallery.defaults import ROW_BLOCK
from facebatch.engines.gallery.errors import GalleryReadError

PAGE = 4096  # the ids begin at a page boundary


class VectorFile:
    """The vectors of an index file, read a row at a time: ``rows[positions]`` is [n, D] float32. Holds its own
    descriptor of the file it was opened from (a gallery rebuilt meanwhile renames a new file over the name)."""

    def __init__(self, descriptor: int, offset: int, dimension: int) -> None:
        self.descriptor = os.dup(descriptor)
        self.offset, self.dimension = offset, dimension
        self.row_bytes = dimension * 4

    def __getitem__(self, positions: np.ndarray) -> np.ndarray:
        try:
            read = b"".join(
                os.pread(self.descriptor, self.row_bytes, self.offset + int(p) * self.row_bytes) for p in positions
            )
        except OSError as exc:
            raise GalleryReadError(f"cannot read the gallery's index vectors ({exc.strerror or exc})") from None
        if len(read) != len(positions) * self.row_bytes:
            raise GalleryReadError(
                "the gallery's index file was cut short while it was open (changed in place, not rebuilt by index)"
            )
        return np.frombuffer(read, dtype="<f4").reshape(len(positions), self.dimension)

    def __del__(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.descriptor)


class RerankedIndex:
    """An IVF-PQ index whose candidates are re-ranked by exact inner product with the stored vectors.
    Searches like a FAISS index (``search(queries, k)`` → scores, ids; ``ntotal``)."""

    def __init__(self, index, ids: np.ndarray, vectors: np.ndarray, rerank: int) -> None:
        self.index = index  # the FAISS IndexIVFPQ (nprobe is set on it)
        self.ids = ids  # ascending
        self.vectors = vectors  # row i is the vector of ids[i]: in memory while building, a VectorFile once read
        self.rerank = rerank  # candidates taken from the codes per query (at least k)

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @property
    def d(self) -> int:
        return int(self.index.d)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        wanted = max(1, min(max(k, self.rerank), self.ntotal))
        _, candidates = self.index.search(queries, wanted)
        valid = candidates >= 0
        at = np.clip(np.searchsorted(self.ids, np.where(valid, candidates, 0)), 0, len(self.ids) - 1)
        valid &= self.ids[at] == candidates
        scores = np.full(candidates.shape, -np.inf, np.float32)
        for q in range(len(queries)):  # one query's candidates at a time: [rerank, D] read
            rows = at[q, valid[q]]
            order = np.argsort(rows, kind="stable")  # in file order
            scores[q, np.flatnonzero(valid[q])[order]] = self.vectors[rows[order]] @ queries[q]
        best = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        found = np.take_along_axis(np.where(valid, candidates, -1), best, axis=1)
        return np.take_along_axis(scores, best, axis=1), found


def sorted_by_id(ids: np.ndarray, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ids = np.asarray(ids, np.int64)
    if not ascending(ids):
        order = np.argsort(ids, kind="stable")
        return ids[order], np.ascontiguousarray(vectors[order], dtype=np.float32)
    return ids, np.ascontiguousarray(vectors, dtype=np.float32)


def ascending(ids: np.ndarray) -> bool:
    """Strictly: the order the file keeps them in, and searchsorted's."""
    return bool(np.all(ids[1:] > ids[:-1]))


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
        for start in range(0, len(index.ids), ROW_BLOCK):  # in blocks: a copy of 1M × 512 floats would be 2 GB
            out.write(np.ascontiguousarray(index.vectors[start : start + ROW_BLOCK], dtype="<f4").tobytes())
        out.flush()
        os.fsync(out.fileno())
    return offset


def expected_size(offset: int, rows: int, dimension: int) -> int:
    return offset + rows * 8 + rows * dimension * 4


def open_vectors(handle, offset: int, rows: int, dimension: int) -> tuple[np.ndarray, VectorFile]:
    """The ids (read, checked ascending) and the vectors (read a row at a time, as asked) from an open index file
    whose size the caller has checked against ``expected_size``. ValueError when the ids are not ascending."""
    handle.seek(offset)
    ids = np.frombuffer(handle.read(rows * 8), dtype="<i8").astype(np.int64)
    if len(ids) != rows or not ascending(ids):
        raise ValueError("its face ids are not in ascending order")
    if rows and ids[0] < 0:
        raise ValueError("its face ids are not row numbers")
    return ids, VectorFile(handle.fileno(), offset + rows * 8, dimension)
