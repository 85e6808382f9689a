"""The gallery's FAISS index over unit-length embeddings, by inner product (= cosine): exact
(``IndexFlatIP``) or approximate (HNSW, IVF, IVF-PQ) with parameters recorded in the manifest.
The ids are the gallery's global row numbers. FAISS is imported here only (the ``index`` extra).

An index file may come from someone else: it is read only if it is the size the manifest records,
and with FAISS's deserialization caps set from that size and the recorded rows, so that a crafted
header cannot make the reader allocate more than the file holds (FAISS's own cap is 1 TiB a vector).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facebatch.core.atomic import atomic_path
from facebatch.core.errors import SpecError
from facebatch.engines.gallery.defaults import (
    INDEX_MIN_BYTES_PER_FACE,
    INDEX_PARAMETERS,
    INDEX_TYPES,
    MANIFEST,
    PRIVATE_FILE,
)
from facebatch.engines.gallery.errors import GalleryError, GalleryReadError
from facebatch.engines.gallery.layout import open_regular

INDEX_EXTRA_HINT = "pip install 'facebatch[index]' (faiss-cpu, pyarrow)"


def import_faiss():
    try:
        import faiss
    except ImportError:
        raise SpecError(f"the gallery needs FAISS: {INDEX_EXTRA_HINT}") from None
    return faiss


@dataclass(frozen=True)
class IndexChoice:
    kind: str = "flat"
    parameters: dict[str, int] = field(default_factory=dict)  # as asked; 0 = chosen from the data

    def __post_init__(self) -> None:
        if self.kind not in INDEX_TYPES:
            raise SpecError(f"index {self.kind} is not one of {', '.join(INDEX_TYPES)}", field="index")
        known = INDEX_PARAMETERS[self.kind]
        unknown = sorted(set(self.parameters) - set(known))
        if unknown:
            takes = ", ".join(known) or "no parameters"
            raise SpecError(
                f"index {self.kind} has no parameter {', '.join(unknown)} (it takes {takes})", field="index_parameters"
            )
        for name, value in self.parameters.items():
            if value < 0:
                raise SpecError(f"index parameter {name}={value} must be at least 0", field="index_parameters")

    def resolved(self, rows: int, dimension: int) -> dict[str, int]:
        """The parameters with the data's defaults filled in (what the manifest records)."""
        values = {**INDEX_PARAMETERS[self.kind], **self.parameters}
        if "nlist" in values:
            if not values["nlist"]:
                values["nlist"] = int(max(1, min(4 * math.sqrt(max(rows, 1)), rows // 39 or 1)))
            values["nlist"] = max(1, min(values["nlist"], max(rows, 1)))
        if self.kind == "ivfpq":
            if not values["m"]:
                values["m"] = max(
                    d for d in range(1, dimension + 1) if dimension % d == 0 and d <= max(1, dimension // 8)
                )
            if dimension % values["m"]:
                raise SpecError(
                    f"index parameter m={values['m']} must divide the embedding size {dimension}",
                    field="index_parameters",
                )
            # k-means over 2^nbits centroids wants at least that many training vectors
            values["nbits"] = max(1, min(values["nbits"], int(math.log2(max(rows, 2)))))
        return values


def parse_index_parameters(items: list[str]) -> dict[str, int]:
    values = {}
    for item in items:
        name, _, value = item.partition("=")
        if not name or not value.strip().isdigit():
            raise SpecError(
                f"index parameter {item!r} is not NAME=INTEGER (for example nprobe=32)", field="index_parameters"
            )
        values[name.strip().replace("-", "_")] = int(value)
    return values


def build_index(choice: IndexChoice, ids: np.ndarray, vectors: np.ndarray, threads: int = 0):
    """A trained index holding ``vectors`` under ``ids``; and the parameters it was built with."""
    faiss = import_faiss()
    if threads:
        faiss.omp_set_num_threads(threads)
    rows, dimension = vectors.shape
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    values = choice.resolved(rows, dimension)
    metric = faiss.METRIC_INNER_PRODUCT
    if choice.kind == "flat":
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
    elif choice.kind == "hnsw":
        inner = faiss.IndexHNSWFlat(dimension, values["m"], metric)
        inner.hnsw.efConstruction = values["ef_construction"]
        inner.hnsw.efSearch = values["ef_search"]
        index = faiss.IndexIDMap2(inner)
    else:
        quantizer = faiss.IndexFlatIP(dimension)
        if choice.kind == "ivf":
            index = faiss.IndexIVFFlat(quantizer, dimension, values["nlist"], metric)
        else:
            index = faiss.IndexIVFPQ(quantizer, dimension, values["nlist"], values["m"], values["nbits"], metric)
        # (FAISS's Python wrapper keeps the quantiser alive as long as the index)
        if rows:
            index.train(vectors)
        index.nprobe = values["nprobe"]
    if rows:
        index.add_with_ids(vectors, np.ascontiguousarray(ids, dtype=np.int64))
    return index, values


def set_search_parameters(index, kind: str, values: dict[str, int]) -> None:
    """What a read index forgets: HNSW's efSearch, IVF's nprobe."""
    faiss = import_faiss()
    if kind == "hnsw":
        faiss.downcast_index(index.index).hnsw.efSearch = values["ef_search"]
    elif kind in ("ivf", "ivfpq"):
        faiss.extract_index_ivf(index).nprobe = values["nprobe"]


def write_index(index, target: Path) -> int:
    """Write atomically (0600: a gallery is private); the file's size."""
    faiss = import_faiss()
    with atomic_path(target, "out", mode=PRIVATE_FILE) as tmp:
        faiss.write_index(index, str(tmp))
    return target.stat().st_size


@contextlib.contextmanager
def deserialization_caps(faiss, vector_bytes: int, loops: int) -> Iterator[None]:
    """FAISS's deserialization limits for one read: no vector larger than ``vector_bytes``, no loop-driving
    field (nlist, …) above ``loops``. They are process-wide and not thread-safe (FAISS's own words): set
    around the one read, then put back."""
    before = faiss.get_deserialization_vector_byte_limit(), faiss.get_deserialization_loop_limit()
    faiss.set_deserialization_vector_byte_limit(vector_bytes)
    faiss.set_deserialization_loop_limit(loops)
    try:
        yield
    finally:
        faiss.set_deserialization_vector_byte_limit(before[0])
        faiss.set_deserialization_loop_limit(before[1])


def _faiss_reason(exc: BaseException) -> str:
    """FAISS says "Error in <function> at <file>:<line>: <what>": the what is enough."""
    if isinstance(exc, MemoryError):
        return "it asks for more memory than there is"
    lines = str(exc).strip().splitlines() or ["unreadable"]
    return re.sub(r"^Error in .*? at \S+:\d+: ", "", lines[0])[:160]


def read_index(path: Path, recorded: dict[str, Any], hint: str):
    """The index at ``path`` if it is the file the manifest ``recorded`` (its size; its rows after reading),
    read under caps from that size and those rows: a vector no larger than the file, no more lists than
    faces. Damage is one line with ``hint`` (how to rebuild); a file that cannot be read is an error."""
    faiss = import_faiss()
    rows, size = int(recorded["rows"]), int(recorded["bytes"])
    damaged = f"the gallery's index {path} is corrupt"
    try:
        with open_regular(path, f"the index {MANIFEST} records") as handle:
            actual = os.fstat(handle.fileno()).st_size
            if actual != size:
                raise GalleryError(f"{damaged} (it is {actual} bytes, {MANIFEST} records {size}); {hint}")
            if rows * INDEX_MIN_BYTES_PER_FACE > size:
                raise GalleryError(f"{damaged} ({MANIFEST} says {rows} faces, more than {size} bytes can hold); {hint}")
            with deserialization_caps(faiss, vector_bytes=size + 1, loops=max(rows, 1)):
                index = faiss.read_index(faiss.PyCallbackIOReader(handle.read))
    except FileNotFoundError:
        raise GalleryError(f"the gallery's index {path} is missing; {hint}") from None
    except OSError as exc:
        raise GalleryReadError(
            f"cannot read the gallery's index {path} ({exc.strerror or exc}); fix its permissions and run again"
        ) from None
    except (RuntimeError, MemoryError) as exc:
        raise GalleryError(f"{damaged} ({_faiss_reason(exc)}); {hint}") from None
    if index.ntotal != rows:
        raise GalleryError(f"the gallery's index {path} holds {index.ntotal} faces, the manifest says {rows}; {hint}")
    return index


def index_description(kind: str, values: dict[str, Any]) -> str:
    names = {"flat": "IndexFlatIP (exact)", "hnsw": "IndexHNSWFlat", "ivf": "IndexIVFFlat", "ivfpq": "IndexIVFPQ"}
    shown = ", ".join(f"{k}={v}" for k, v in values.items())
    return names[kind] + (f" ({shown})" if shown else "")
