"""A gallery folder: Parquet shards of face rows, a manifest, a FAISS index over the face rows.

    GALLERY/manifest.json          the models (sha256, spec), embedding size, the shards, the failed photos, the index
    GALLERY/shards/shard-00000.parquet …
    GALLERY/index.faiss            ids = global row numbers over the shards, in manifest order

A shard is written under a temporary name and renamed; the manifest (written the same way) is
what commits it. So a run killed at any moment leaves committed shards as they were, and files
the manifest does not name, which the next ``index`` run removes. The index records which shards
it covers: one that lags behind the shards (a run stopped before it was built) is refused by
search with what to run, never read as if it were whole. One writer at a time: ``index`` holds
an exclusive lock on ``GALLERY/.lock`` (the kernel drops it when the process dies, SIGKILL too).

A photo's rows are its latest shard's: a photo that changed is indexed again into a new shard,
and its rows in older shards are dead (not in the index, not shown).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facebatch.atomic import atomic_path, ensure_writable_dir, write_text_atomic
from facebatch.engines.gallery.photos import Photo
from facebatch.engines.gallery.settings import GALLERY_FORMAT, INDEX_FILE, MANIFEST, SHARDS
from facebatch.errors import OutputError, SpecError
from facebatch.words import counted

LOCK = ".lock"


class GalleryError(SpecError):
    """A gallery that cannot be used as it is: says which file and how to rebuild."""


@dataclass(frozen=True)
class ModelIdentity:
    """Which model made a gallery's embeddings: two galleries (or a gallery and a query) agree only
    when both sha256 agree."""

    role: str  # "detector" or "embedder"
    name: str
    file: str
    sha256: str
    spec: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "file": self.file, "sha256": self.sha256, "spec": self.spec}

    @classmethod
    def from_dict(cls, role: str, data: dict[str, Any]) -> ModelIdentity:
        return cls(role, data["name"], data["file"], data["sha256"], data.get("spec", {}))


@dataclass(frozen=True)
class ShardEntry:
    name: str  # file name in shards/
    rows: int
    faces: int
    photos: int
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.name, "rows": self.rows, "faces": self.faces, "photos": self.photos, "bytes": self.bytes}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ShardEntry:
        return cls(data["file"], data["rows"], data["faces"], data["photos"], data["bytes"])


@dataclass
class PhotoState:
    shard: int  # position in the manifest's shard list
    key: tuple[int, int, str | None]
    error: str | None


@dataclass
class Manifest:
    detector: ModelIdentity
    embedder: ModelIdentity
    embedding_size: int
    faces_mode: str
    settings: dict[str, Any]
    shards: list[ShardEntry] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    index: dict[str, Any] | None = None  # type, parameters, rows, shards covered, bytes
    photos: int = 0  # photos whose latest rows are read (with or without faces)
    faces: int = 0  # live face rows: what the index holds
    updated: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": GALLERY_FORMAT,
            "what": "facebatch gallery: one Parquet row per face (and one per photo without a face), a FAISS index over "
            "the face rows; ids are global row numbers over the shards in this order",
            "models": {"detector": self.detector.to_dict(), "embedder": self.embedder.to_dict()},
            "embedding_size": self.embedding_size,
            "normalisation": "L2: every embedding has unit length, so inner product = cosine",
            "faces_mode": self.faces_mode,
            "settings": self.settings,
            "counts": {
                "photos": self.photos,
                "faces": self.faces,
                "failed": len(self.failed),
                "shards": len(self.shards),
            },
            "shards": [s.to_dict() for s in self.shards],
            "failed": self.failed,
            "index": self.index,
            "updated": self.updated,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        models = data["models"]
        counts = data.get("counts", {})
        return cls(
            ModelIdentity.from_dict("detector", models["detector"]),
            ModelIdentity.from_dict("embedder", models["embedder"]),
            int(data["embedding_size"]),
            data["faces_mode"],
            data.get("settings", {}),
            [ShardEntry.from_dict(s) for s in data.get("shards", [])],
            list(data.get("failed", [])),
            data.get("index"),
            int(counts.get("photos", 0)),
            int(counts.get("faces", 0)),
            data.get("updated", ""),
        )


def read_manifest(root: Path) -> Manifest:
    """The manifest of gallery ``root``, refusing what is not a gallery, in one line."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise GalleryError(f"gallery path {root} is a file; a gallery is the folder 'facebatch index --out' writes")
    path = root / MANIFEST
    if not path.is_file():
        raise GalleryError(
            f"{root} is not a gallery (no {MANIFEST}); make one with 'facebatch index PHOTOS... --out {root}'"
        )
    try:
        data = json.loads(path.read_text())
        if data.get("format") != GALLERY_FORMAT:
            raise GalleryError(f"{path} is gallery format {data.get('format')}, this facebatch reads {GALLERY_FORMAT}")
        return Manifest.from_dict(data)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise GalleryError(
            f"{path} is corrupt ({type(exc).__name__}: {exc}); index the photos again into a new --out"
        ) from None


class Gallery:
    """An open gallery: its manifest, the latest state of each photo, and the shards' row offsets."""

    def __init__(self, root: Path, manifest: Manifest) -> None:
        self.root = Path(root)
        self.manifest = manifest
        self._offsets = np.cumsum([0] + [s.rows for s in manifest.shards]).tolist()
        self._metadata: dict[int, Any] = {}  # shard position → its metadata table (search)

    @property
    def shard_folder(self) -> Path:
        return self.root / SHARDS

    @property
    def index_path(self) -> Path:
        return self.root / INDEX_FILE

    @property
    def total_rows(self) -> int:
        return self._offsets[-1]

    # -- reading --------------------------------------------------------------------------------------
    @classmethod
    def open(cls, root: Path) -> Gallery:
        return cls(root, read_manifest(root))

    def read_shard(self, position: int, columns: list[str] | None = None):  # pa.Table
        import pyarrow.parquet as pq

        entry = self.manifest.shards[position]
        path = self.shard_folder / entry.name
        rebuild = f"index the same photos again into a new --out, or remove {entry.name} from {MANIFEST}'s shards and run index again"
        if not path.is_file():
            raise GalleryError(f"shard {path} is missing; {rebuild}")
        try:
            table = pq.read_table(path, columns=columns)
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several kinds for a damaged file; all mean corrupt
            raise GalleryError(f"shard {path} is corrupt ({str(exc).splitlines()[0][:160]}); {rebuild}") from None
        if table.num_rows != entry.rows:
            raise GalleryError(f"shard {path} has {table.num_rows} rows, the manifest says {entry.rows}; {rebuild}")
        return table

    def photo_states(self) -> dict[str, PhotoState]:
        """Each photo's latest state: the shard holding its rows, what it was indexed as, its error."""
        states: dict[str, PhotoState] = {}
        for position in range(len(self.manifest.shards)):
            table = self.read_shard(position, ["photo", "size", "mtime_ns", "subject", "error"])
            photos = table.column("photo").to_pylist()
            sizes = table.column("size").to_pylist()
            mtimes = table.column("mtime_ns").to_pylist()
            subjects = table.column("subject").to_pylist()
            errors = table.column("error").to_pylist()
            for photo, size, mtime, subject, error in zip(photos, sizes, mtimes, subjects, errors, strict=True):
                states[photo] = PhotoState(position, (size, mtime, subject), error)
        return states

    def live_faces(self, states: dict[str, PhotoState] | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(global row ids, embeddings) of the face rows that are their photo's latest, shard by shard."""
        from facebatch.engines.gallery.table import fixed_rows

        states = self.photo_states() if states is None else states
        for position in range(len(self.manifest.shards)):
            table = self.read_shard(position, ["photo", "face", "embedding"])
            faces = table.column("face").to_numpy()
            photos = table.column("photo").to_pylist()
            live = np.array(
                [face >= 0 and states[photo].shard == position for photo, face in zip(photos, faces, strict=True)],
                dtype=bool,
            )
            if not live.any():
                continue
            rows = np.flatnonzero(live)
            yield (rows + self._offsets[position]).astype(np.int64), fixed_rows(table.column("embedding"))[rows]

    def locate(self, row: int) -> tuple[int, int]:
        """A global row id → (shard position, row within it)."""
        if not 0 <= row < self.total_rows:
            raise GalleryError(
                f"{self.index_path} names row {row}, the shards hold {self.total_rows}; {self.rebuild_index_hint}"
            )
        position = bisect_right(self._offsets, row) - 1
        return position, row - self._offsets[position]

    def face_record(self, row: int) -> dict[str, Any]:
        from facebatch.engines.gallery.table import METADATA_COLUMNS

        position, local = self.locate(row)
        if position not in self._metadata:
            self._metadata[position] = self.read_shard(position, list(METADATA_COLUMNS))
        record = self._metadata[position].slice(local, 1).to_pylist()[0]
        return {
            "row": row,
            "photo": record["photo"],
            "face": record["face"],
            "subject": record["subject"],
            "box": [round(float(v), 2) for v in record["box"]],
            "score": round(float(record["score"]), 4),
        }

    @property
    def rebuild_index_hint(self) -> str:
        return f"rebuild it with 'facebatch index --out {self.root}' (no photos needed: it is built from the shards)"

    # -- writing (under the lock) ----------------------------------------------------------------------
    @contextlib.contextmanager
    def writing(self) -> Iterator[Gallery]:
        """The one writer: an exclusive lock, and the files a killed writer left removed."""
        ensure_writable_dir(self.shard_folder, "--out")
        handle = open(self.root / LOCK, "a+")
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                raise OutputError(
                    f"another 'facebatch index' is writing {self.root}; wait for it, or pass another --out"
                ) from None
            self._remove_uncommitted()
            try:
                yield self
            except BaseException:
                self._drop_shards_not_on_disk_manifest()
                raise
        finally:
            if not (self.root / MANIFEST).exists():  # nothing committed: leave no lock in a folder that is no gallery
                (self.root / LOCK).unlink(missing_ok=True)
                with contextlib.suppress(OSError):
                    self.shard_folder.rmdir()  # empty unless a shard was written (then the next run removes it)
            handle.close()

    def _drop_shards_not_on_disk_manifest(self) -> None:
        """An interrupted writer (a signal, an error) may stop between a shard's write and the manifest
        that names it: that shard goes now, so that what stays is what was committed. The manifest on
        disk decides (the one in memory may already name a shard whose save never finished)."""
        try:
            named = {s.name for s in read_manifest(self.root).shards} if (self.root / MANIFEST).exists() else set()
        except GalleryError:
            return  # never guess over a manifest that cannot be read: the next run says what is wrong
        for path in self._shards_not_in(named):
            if path.is_file():
                path.unlink(missing_ok=True)

    def _shards_not_in(self, named: set[str]) -> list[Path]:
        """The files in shards/ that ``named`` (a manifest's shard names) does not hold."""
        return [p for p in self.shard_folder.iterdir() if p.name not in named]

    def _remove_uncommitted(self) -> None:
        """Shard files the manifest does not name (a killed run's), and Ray's staging folders."""
        import shutil

        from facebatch.progress import warn

        stale = self._shards_not_in({s.name for s in self.manifest.shards})
        stale += [p for p in self.root.glob(".ray-staging-*")]
        stale += [p for p in self.root.glob(f".{INDEX_FILE}.*.tmp")] + [p for p in self.root.glob(f".{MANIFEST}.*.tmp")]
        for path in stale:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        if stale:
            warn(f"removed {counted(len(stale), 'file')} an earlier index run left uncommitted in {self.root}")

    def next_shard_name(self) -> str:
        taken = {s.name for s in self.manifest.shards}
        number = len(self.manifest.shards)
        while f"shard-{number:05d}.parquet" in taken:
            number += 1
        return f"shard-{number:05d}.parquet"

    def write_shard(self, table) -> Path:  # pa.Table → its file, not yet committed
        import pyarrow.parquet as pq

        target = self.shard_folder / self.next_shard_name()
        with atomic_path(target, "--out") as tmp:
            pq.write_table(table, tmp, compression="zstd")
        return target

    def commit(self, files: list[Path], states: dict[str, PhotoState]) -> None:
        """Name ``files`` (written shards, in order) in the manifest, with what they hold: from this
        moment they are the gallery's. ``states`` is updated to match."""
        import pyarrow.parquet as pq

        for path in files:
            table = pq.read_table(path, columns=["photo", "face", "size", "mtime_ns", "subject", "error"])
            target = self.shard_folder / self.next_shard_name()
            if path != target:
                os.replace(path, target)
            position = len(self.manifest.shards)
            photos = table.column("photo").to_pylist()
            faces = table.column("face").to_numpy()
            keys = zip(
                table.column("size").to_pylist(),
                table.column("mtime_ns").to_pylist(),
                table.column("subject").to_pylist(),
                strict=True,
            )
            errors = table.column("error").to_pylist()
            for photo, key, error in zip(photos, keys, errors, strict=True):
                states[photo] = PhotoState(position, key, error)
            self.manifest.shards.append(
                ShardEntry(
                    target.name, table.num_rows, int((faces >= 0).sum()), len(set(photos)), target.stat().st_size
                )
            )
        self._offsets = np.cumsum([0] + [s.rows for s in self.manifest.shards]).tolist()
        self.refresh_counts(states)
        self.save()

    def refresh_counts(self, states: dict[str, PhotoState]) -> None:
        """Photos read and failed, from each photo's latest rows (a photo that failed and was read
        later counts as read)."""
        self.manifest.failed = [
            {"photo": photo, "error": state.error} for photo, state in states.items() if state.error is not None
        ]
        self.manifest.photos = sum(1 for s in states.values() if s.error is None)

    def save(self) -> None:
        self.manifest.updated = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        write_text_atomic(self.root / MANIFEST, json.dumps(self.manifest.to_dict(), indent=1) + "\n", "--out")


def _ours(name: str) -> bool:
    """What an index run writes into a gallery before its first commit (a killed first run leaves these)."""
    return name in (SHARDS, LOCK) or name.startswith((".ray-staging-", f".{MANIFEST}.", f".{INDEX_FILE}."))


def photos_to_index(photos: list[Photo], states: dict[str, PhotoState]) -> list[Photo]:
    """The photos that are new, changed (size, time or subject), or failed last time."""
    todo = []
    for photo in photos:
        state = states.get(photo.path)
        if state is None or state.key != photo.key or state.error is not None:
            todo.append(photo)
    return todo


def create_or_open(
    root: Path,
    detector: ModelIdentity,
    embedder: ModelIdentity,
    embedding_size: int,
    faces_mode: str,
    settings: dict[str, Any],
) -> Gallery:
    """The gallery at ``root`` to add to (made if new): refused when it was built with other models
    or another --faces, so embeddings of two models never mix."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise GalleryError(f"gallery path {root} is a file; pass a folder as --out")
    if not (root / MANIFEST).is_file():
        if root.is_dir() and not all(_ours(p.name) for p in root.iterdir()):
            raise OutputError(
                f"{root} exists and is not a gallery (no {MANIFEST}); pass a new or empty folder as --out"
            )
        ensure_writable_dir(root / SHARDS, "--out")
        gallery = Gallery(root, Manifest(detector, embedder, embedding_size, faces_mode, settings))
        return gallery
    gallery = Gallery.open(root)
    manifest = gallery.manifest
    for recorded, given in ((manifest.detector, detector), (manifest.embedder, embedder)):
        if recorded.sha256 != given.sha256:
            raise GalleryError(
                f"{root} was built with the {recorded.role} {recorded.name} ({recorded.file}, sha256 "
                f"{recorded.sha256[:12]}…), not {given.name} ({given.sha256[:12]}…): embeddings of two models must not "
                f"mix; pass that {recorded.role}, or index into a new --out"
            )
    if manifest.faces_mode != faces_mode:
        raise GalleryError(f"{root} was built with --faces {manifest.faces_mode}; pass that, or index into a new --out")
    return gallery
