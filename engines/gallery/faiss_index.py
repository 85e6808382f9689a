"""The gallery's FAISS index over unit-length embeddings, by inner product (= cosine): exact
(``IndexFlatIP``) or approximate (HNSW, IVF, IVF-PQ; IVF-PQ re-ranked from the vectors on disk, refine.py)
with parameters recorded in the manifest.
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
from facebatch.core.trusted_paths import printable
from facebatch.engines.gallery.defaults import (
    DEFAULT_INDEX,
    DEFAULT_RECALL,
    INDEX_MIN_BYTES_PER_FACE,
    INDEX_PARAMETERS,
    INDEX_TYPES,
    MANIFEST,
    MAX_RERANK,
    PRIVATE_FILE,
    RECALL_K,
    ROW_BLOCK,
    TUNED_PARAMETER,
)
from facebatch.engines.gallery.errors import GalleryError, GalleryReadError, clipped
from facebatch.engines.gallery.layout import open_regular
from facebatch.engines.gallery.refine import (
    PAGE,
    RerankedIndex,
    expected_size,
    open_vectors,
    sorted_by_id,
    write_reranked,
)

INDEX_EXTRA_HINT = "pip install 'facebatch[index]' (faiss-cpu, pyarrow)"
IVF_PARALLEL_OVER_LISTS = 1  # FAISS's IndexIVF.parallel_mode 1: threads share one query's lists (set_search_parameters)


def import_faiss():
    try:
        import faiss
    except ImportError:
        raise SpecError(f"the gallery needs FAISS: {INDEX_EXTRA_HINT}") from None
    return faiss


@dataclass(frozen=True)
class IndexChoice:
    kind: str = DEFAULT_INDEX  # auto: chosen from the data and the recall target (engines/gallery/recall.py)
    parameters: dict[str, int] = field(default_factory=dict)  # as asked; 0 = chosen from the data, or tuned
    recall: float = DEFAULT_RECALL  # the recall@1 an approximate index must measure (its search parameter is tuned)

    def __post_init__(self) -> None:
        if self.kind not in INDEX_TYPES:
            raise SpecError(f"index {self.kind} is not one of {', '.join(INDEX_TYPES)}", field="index")
        if isinstance(self.recall, bool) or not isinstance(self.recall, int | float) or not 0 <= self.recall <= 1:
            raise SpecError(
                f"recall must be a fraction from 0 to 1 (recall@1 against exact search), got {self.recall}",
                field="recall",
            )
        known = INDEX_PARAMETERS[self.kind]
        unknown = sorted(set(self.parameters) - set(known))
        if unknown:
            takes = ", ".join(known) or (
                "no parameters: name the index kind to set them" if self.kind == "auto" else "no parameters"
            )
            raise SpecError(
                f"index {self.kind} has no parameter {', '.join(unknown)} (it takes {takes})", field="index_parameters"
            )
        if self.parameters.get("rerank", 0) > MAX_RERANK:
            raise SpecError(
                f"index parameter rerank={self.parameters['rerank']} is more candidates than {MAX_RERANK} a query "
                "reads from disk; re-rank fewer",
                field="index_parameters",
            )
        for name, value in self.parameters.items():
            auto = known[name] == 0  # 0 lets the data choose it
            if value < 1 and not (auto and value == 0):
                lowest = "a positive integer, or 0 to choose it from the data" if auto else "a positive integer"
                takes = ", ".join(f"{k} (default {_default_words(self.kind, k, v)})" for k, v in known.items())
                raise SpecError(
                    f"index parameter {name}={value} must be {lowest}; index {self.kind} takes {takes}",
                    field="index_parameters",
                )

    def resolved(self, rows: int, dimension: int) -> dict[str, int]:
        """The parameters with the data's defaults filled in (what the manifest records)."""
        values = {**INDEX_PARAMETERS[self.kind], **self.parameters}
        if "nlist" in values:
            if not values["nlist"]:
                values["nlist"] = int(max(1, min(4 * math.sqrt(max(rows, 1)), rows // 39 or 1)))
            values["nlist"] = max(1, min(values["nlist"], max(rows, 1)))
        if self.kind in ("ivfpq", "ivfpq_refine"):
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


def _default_words(kind: str, name: str, value: int) -> str:
    """A parameter's default as the refusal says it: its value, tuned to the recall target, or from the data."""
    if value:
        return str(value)
    return "tuned to the recall target" if TUNED_PARAMETER.get(kind) == name else "from the data"


def parse_index_parameters(items: list[str]) -> dict[str, int]:
    """``NAME=INTEGER`` items as a dict (names with '-' or '_'); ``IndexChoice`` judges names and values."""
    values = {}
    for item in items:
        name, _, value = item.partition("=")
        if not name.strip() or not re.fullmatch(r"[+-]?[0-9]+", value.strip()):
            takes = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in INDEX_PARAMETERS.items() if names)
            raise SpecError(
                f"index parameter {printable(item, 60)} is not NAME=INTEGER with a positive integer (for example "
                f"nprobe=32); the parameters are {takes}",
                field="index_parameters",
            )
        values[name.strip().replace("-", "_")] = int(value)
    return values


def build_index(
    choice: IndexChoice, ids: np.ndarray, vectors: np.ndarray, threads: int = 0, later: np.ndarray | None = None
):
    """A trained index holding ``vectors`` under ``ids``, but for the rows ``later`` marks (held out to measure
    recall on: ``add_rows`` adds them once measured); and the parameters it was built with (a search parameter
    left 0 is still 0: ``recall.build_measured`` tunes it; until then the index searches with the smallest useful
    one). An IVF index is trained on every row."""
    if choice.kind == "auto":
        raise SpecError("index auto is chosen by measuring (build_measured), not built as such", field="index")
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
        inner.hnsw.efSearch = values["ef_search"] or RECALL_K
        index = faiss.IndexIDMap2(inner)
    else:
        quantizer = faiss.IndexFlatIP(dimension)
        if choice.kind == "ivf":
            index = faiss.IndexIVFFlat(quantizer, dimension, values["nlist"], metric)
        else:
            index = faiss.IndexIVFPQ(quantizer, dimension, values["nlist"], values["m"], values["nbits"], metric)
            index.pq.cp.min_points_per_centroid = 1  # 2^nbits ≤ rows already (resolved); FAISS would warn below 39
        # (FAISS's Python wrapper keeps the quantiser alive as long as the index)
        index.cp.min_points_per_centroid = 1  # nlist ≤ rows/39 unless asked for: a warning of FAISS's is no help
        if rows:
            index.train(vectors)
        index.nprobe = values["nprobe"] or 1
        index.parallel_mode = IVF_PARALLEL_OVER_LISTS  # as set_search_parameters sets it
    if choice.kind == "ivfpq_refine":  # the full vectors beside the codes, by id, to re-rank from
        index = RerankedIndex(index, *sorted_by_id(ids, vectors), values["rerank"])
    add_rows(index, ids, vectors, None if later is None else ~later)
    return index, values


def add_rows(index, ids: np.ndarray, vectors: np.ndarray, which: np.ndarray | None = None) -> None:
    """Add the rows ``which`` marks (all when None) to ``index``, under their ids."""
    target = index.index if isinstance(index, RerankedIndex) else index  # its vectors are all there already
    ids = np.asarray(ids, dtype=np.int64)
    for start in range(0, len(ids), ROW_BLOCK):  # a held-out mask then copies a block, not the gallery
        block = slice(start, start + ROW_BLOCK)
        chosen = slice(None) if which is None else which[block]
        block_ids = np.ascontiguousarray(ids[block][chosen])
        if len(block_ids):
            target.add_with_ids(np.ascontiguousarray(vectors[block][chosen], dtype=np.float32), block_ids)


def set_search_parameters(index, kind: str, values: dict[str, int]) -> None:
    """What a read index forgets: HNSW's efSearch, IVF's nprobe and how it shares a search among threads."""
    faiss = import_faiss()
    if kind == "hnsw":
        faiss.downcast_index(index.index).hnsw.efSearch = values["ef_search"]
    elif kind in ("ivf", "ivfpq", "ivfpq_refine"):
        ivf = faiss.extract_index_ivf(index.index if kind == "ivfpq_refine" else index)
        ivf.nprobe = values["nprobe"]
        # threads split the probed lists, not the queries (FAISS's default): one query then uses every thread.
        # Measured at 300k × 512-d, 2 threads, nprobe 147: ivf 1.61 → 1.02 ms a query, 64 queries 59.7 → 61.6 ms
        ivf.parallel_mode = IVF_PARALLEL_OVER_LISTS
        if kind == "ivfpq_refine":
            index.rerank = values["rerank"]


def write_index(index, target: Path) -> dict[str, int]:
    """Write atomically (0600: a gallery is private); what the manifest records of the file: its ``bytes``,
    and for a re-ranked index where its vectors begin (``vectors_offset``)."""
    faiss = import_faiss()
    written = {}
    with atomic_path(target, "out", mode=PRIVATE_FILE) as tmp:
        if isinstance(index, RerankedIndex):
            written["vectors_offset"] = write_reranked(index, faiss.serialize_index(index.index), tmp)
        else:
            faiss.write_index(index, str(tmp))
    return {"bytes": target.stat().st_size, **written}


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
    return clipped(re.sub(r"^Error in .*? at \S+:\d+: ", "", lines[0]))


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
            reranked = recorded["type"] == "ivfpq_refine"
            if reranked:
                check_vectors_size(recorded, damaged, hint)
            # (capped by the file's size, not FAISS's part of it: IVF-PQ's precomputed table is made on reading)
            with deserialization_caps(faiss, vector_bytes=size + 1, loops=max(rows, 1)):
                index = faiss.read_index(faiss.PyCallbackIOReader(handle.read))
            if reranked:
                index = reranked_from(faiss, index, handle, recorded)
    except FileNotFoundError:
        raise GalleryError(f"the gallery's index {path} is missing; {hint}") from None
    except OSError as exc:
        raise GalleryReadError(
            f"cannot read the gallery's index {path} ({exc.strerror or exc}); fix its permissions and run again"
        ) from None
    except (RuntimeError, MemoryError, ValueError) as exc:
        raise GalleryError(f"{damaged} ({_faiss_reason(exc)}); {hint}") from None
    if index.ntotal != rows:
        raise GalleryError(f"the gallery's index {path} holds {index.ntotal} faces, the manifest says {rows}; {hint}")
    return index


def check_vectors_size(recorded: dict[str, Any], damaged: str, hint: str) -> None:
    """A re-ranked index's file must hold, after the codes, exactly the recorded rows of recorded dimension, and
    re-rank a bounded number of candidates."""
    offset, dimension = recorded.get("vectors_offset"), recorded.get("dimension")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (offset, dimension)):
        raise GalleryError(f"{damaged} ({MANIFEST} does not say where its vectors are); {hint}")
    if offset % PAGE:
        raise GalleryError(f"{damaged} (its vectors do not begin at a page, as facebatch writes them); {hint}")
    rerank = recorded.get("parameters", {}).get("rerank")
    if not isinstance(rerank, int) or isinstance(rerank, bool) or not 1 <= rerank <= MAX_RERANK:
        raise GalleryError(f"{damaged} (rerank {rerank!r} is not 1 to {MAX_RERANK} candidates); {hint}")
    if expected_size(offset, int(recorded["rows"]), dimension) != int(recorded["bytes"]):
        raise GalleryError(
            f"{damaged} ({recorded['rows']} vectors of {dimension} from byte {offset} are not its "
            f"{recorded['bytes']} bytes); {hint}"
        )


def reranked_from(faiss, index, handle, recorded: dict[str, Any]) -> RerankedIndex:
    """The IVF-PQ codes just read from ``handle``, with the ids and vectors that follow them, checked (ValueError)."""
    rows, dimension = int(recorded["rows"]), int(recorded["dimension"])
    if not isinstance(index, faiss.IndexIVFPQ):
        raise ValueError(f"its codes are a {type(index).__name__}, not the IndexIVFPQ facebatch writes")
    if index.d != dimension:
        raise ValueError(f"its codes are {index.d}-d, its vectors {dimension}-d")
    if index.ntotal != rows:
        raise ValueError(f"its codes hold {index.ntotal} faces, the manifest says {rows}")
    ids, vectors = open_vectors(handle, int(recorded["vectors_offset"]), rows, dimension)
    return RerankedIndex(index, ids, vectors, int(recorded["parameters"]["rerank"]))


def index_description(kind: str, values: dict[str, Any]) -> str:
    names = {
        "flat": "IndexFlatIP (exact)",
        "hnsw": "IndexHNSWFlat",
        "ivf": "IndexIVFFlat",
        "ivfpq": "IndexIVFPQ",
        "ivfpq_refine": "IndexIVFPQ re-ranked exactly from the vectors on disk",
    }
    shown = ", ".join(f"{k}={v}" for k, v in values.items())
    return names[kind] + (f" ({shown})" if shown else "")
