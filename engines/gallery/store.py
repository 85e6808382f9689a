"""A gallery folder: Parquet shards of face rows, a manifest, a FAISS index over the face rows.

    GALLERY/manifest.json          the models (sha256, spec), embedding size, the shards (each with its sha256),
                                   the failed photos, the index
    GALLERY/shards/shard-00000.parquet …
    GALLERY/index.faiss            ids = global row numbers over the shards, in manifest order
    GALLERY/quarantine/            shards that did not read as committed, moved aside (never deleted)

A shard is written under a temporary name and renamed; the manifest (written the same way) is
what commits it. So a run killed at any moment leaves committed shards as they were, and files
the manifest does not name, which the next ``index`` run removes. The index records which shards
it covers: one that lags behind the shards (a run stopped before it was built) is refused by
search with what to run, never read as if it were whole. One writer at a time: ``index`` holds
an exclusive lock on ``GALLERY/.lock`` (the kernel drops it when the process dies, SIGKILL too).

A photo's rows are its latest shard's: a photo that changed is indexed again into a new shard,
and its rows in older shards are dead (not in the index, not shown).

A gallery may come from someone else. Every shard name its manifest gives must be one facebatch
writes (``shard-NNNNN.parquet``) inside ``shards/``, and no name of the layout (the manifest,
``shards/``, the index, the lock, ``quarantine/``) may be a symlink: anything else is refused by
name on open, before anything is read, written or removed. Clean-ups remove only facebatch's own
names (uncommitted shards, the atomic writer's temp files, Ray's staging folders), and a shard this
run wrote only while it still holds the bytes it wrote; anything else in ``shards/`` is named and
left. A shard that does not read as committed (its size, its sha256, Parquet, its rows) is moved
to ``quarantine/``; one that cannot be read at all (permissions, an I/O error) stops the run.
What facebatch creates is private: folders 0700, files 0600.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import stat
import time
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from facebatch.core.atomic import (
    durable_replace,
    ensure_writable_dir,
    fsync_path,
    write_bytes_atomic,
    write_text_atomic,
)
from facebatch.core.errors import FacebatchError, OutputError, SpecError
from facebatch.core.interrupts import created_folder
from facebatch.core.progress import warn
from facebatch.core.trusted_paths import (
    SHA256,
    UntrustedNameError,
    member,
    printable,
    refuse_symlinked_folder,
    refuse_symlinks,
)
from facebatch.core.words import counted
from facebatch.engines.gallery.photos import Photo
from facebatch.engines.gallery.settings import (
    FACES_MODES,
    GALLERY_FORMAT,
    INDEX_FILE,
    INDEX_PARAMETERS,
    LOCK,
    MANIFEST,
    PRIVATE_FILE,
    PRIVATE_FOLDER,
    QUARANTINE,
    SHARD_NAME,
    SHARDS,
    STAGING_PREFIX,
    TEMP_RANDOM,
)

# facebatch's own names in a gallery, exactly (full matches on a folder's entries, never a glob)
SHARD = re.compile(SHARD_NAME)
SHARD_TEMP = re.compile(rf"\.{SHARD_NAME}\.{TEMP_RANDOM}\.tmp")  # atomic_path's temp file of a shard
ROOT_TEMPS = tuple(re.compile(rf"\.{re.escape(name)}\.{TEMP_RANDOM}\.tmp") for name in (MANIFEST, INDEX_FILE))
PROBE = re.compile(rf"\.facebatch-probe-{TEMP_RANDOM}")  # ensure_writable_dir's probe, if a kill caught it
STAGING = re.compile(rf"{re.escape(STAGING_PREFIX)}\d+-{TEMP_RANDOM}")  # Ray's staging folder (ray_job)
LAYOUT = (MANIFEST, SHARDS, INDEX_FILE, LOCK, QUARANTINE)  # names that must never be symlinks


class GalleryError(SpecError):
    """A gallery that cannot be used as it is: says which file and how to rebuild."""


class GalleryReadError(GalleryError):
    """A gallery file that is there but cannot be read (permissions, an I/O error, the shards folder gone): an
    error that stops the run, never taken for damage; nothing is moved or removed."""

    exit_code = 1


class ShardDamaged(GalleryError):
    """A shard that reads, but not as it was committed (its size, its sha256, Parquet, its rows), or is missing:
    ``index`` moves it to the quarantine and indexes its photos again; ``search`` names it."""

    def __init__(self, problem: str, remedy: str) -> None:
        super().__init__(f"{problem}; {remedy}")
        self.problem = problem  # what is wrong, without the remedy (index applies one itself)


def _text(data: dict[str, Any], key: str) -> str:
    value = data[key]
    if not isinstance(value, str):
        raise ValueError(f"{key} is {type(value).__name__}, not text")
    return value


def _count(data: dict[str, Any], key: str) -> int:
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{key} is not a count (a {type(value).__name__})")
    return value


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
        spec = data.get("spec", {})
        if not isinstance(spec, dict):
            raise ValueError(f"the {role}'s spec is not an object")
        if not SHA256.fullmatch(_text(data, "sha256")):
            raise ValueError(f"the {role}'s sha256 is not 64 hexadecimal digits")
        return cls(role, _text(data, "name"), _text(data, "file"), data["sha256"], spec)


@dataclass(frozen=True)
class ShardEntry:
    name: str  # file name in shards/ (checked against SHARD_NAME when a manifest is read)
    rows: int
    faces: int
    photos: int
    bytes: int
    sha256: str | None = None  # recorded at its commit (older manifests lack it until the next index run)

    def to_dict(self) -> dict[str, Any]:
        entry = {"file": self.name, "rows": self.rows, "faces": self.faces, "photos": self.photos, "bytes": self.bytes}
        return entry | ({"sha256": self.sha256} if self.sha256 is not None else {})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ShardEntry:
        digest = data.get("sha256")
        if digest is not None and not (isinstance(digest, str) and SHA256.fullmatch(digest)):
            raise ValueError("a shard's sha256 is not 64 hexadecimal digits")
        counts = (_count(data, key) for key in ("rows", "faces", "photos", "bytes"))
        return cls(data["file"], *counts, digest)


def _index_record(record: Any) -> dict[str, Any] | None:
    """The manifest's index entry, checked: a type facebatch builds, counts, integer parameters."""
    if record is None:
        return None
    if not isinstance(record, dict) or record.get("type") not in INDEX_PARAMETERS:
        raise ValueError("index is not a record of one of facebatch's index types")
    for key in ("rows", "shards", "bytes"):
        _count(record, key)
    parameters = record.get("parameters", {})
    if not isinstance(parameters, dict) or not all(
        isinstance(value, int) and not isinstance(value, bool) for value in parameters.values()
    ):
        raise ValueError("index parameters are not NAME: INTEGER")
    if set(INDEX_PARAMETERS[record["type"]]) - set(parameters) or not isinstance(record.get("faiss", ""), str):
        raise ValueError("index parameters or description are incomplete")
    return record


def _failed(entries: Any) -> list[dict[str, str]]:
    if not isinstance(entries, list) or not all(
        isinstance(e, dict) and isinstance(e.get("photo"), str) and isinstance(e.get("error"), str) for e in entries
    ):
        raise ValueError("failed is not a list of {photo, error}")
    return entries


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
        """Strict: every field a value of its type (a manifest may come from anyone)."""
        models = data["models"]
        counts = data.get("counts", {})
        embedding_size = _count(data, "embedding_size")
        faces_mode = data["faces_mode"]
        if not embedding_size or faces_mode not in FACES_MODES or not isinstance(data.get("settings", {}), dict):
            raise ValueError("embedding_size, faces_mode or settings is not one facebatch writes")
        shards = data.get("shards", [])
        if not isinstance(shards, list):
            raise ValueError("shards is not a list")
        return cls(
            ModelIdentity.from_dict("detector", models["detector"]),
            ModelIdentity.from_dict("embedder", models["embedder"]),
            embedding_size,
            faces_mode,
            data.get("settings", {}),
            [ShardEntry.from_dict(s) for s in shards],
            _failed(data.get("failed", [])),
            _index_record(data.get("index")),
            _count(counts, "photos") if "photos" in counts else 0,
            _count(counts, "faces") if "faces" in counts else 0,
            str(data.get("updated", "")),
        )


@contextlib.contextmanager
def open_regular(path: Path, what: str) -> Iterator[BinaryIO]:
    """``path`` open for reading if it is a regular file: never through a symlink (O_NOFOLLOW), never blocking
    on a FIFO or a device (refused by name). Other OSErrors propagate: the caller says what they mean."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UntrustedNameError(
                f"{path} is a symlink ({what}); facebatch does not read through links in a gallery: refused, "
                "nothing touched"
            ) from None
        raise
    with os.fdopen(descriptor, "rb") as handle:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise UntrustedNameError(f"{path} ({what}) is not a regular file; refused, nothing touched")
        yield handle


def refuse_layout_links(root: Path) -> None:
    """No name of a gallery's layout may be a symlink: reading, writing or cleaning through one would reach
    outside the gallery. Refused by name before anything is touched."""
    for name in LAYOUT:
        refuse_symlinks(root, name, f"the layout of the gallery {root}")


def check_shard_names(root: Path, manifest: Manifest) -> None:
    """Every shard the manifest names is one facebatch writes, inside ``shards/``, through no symlink, once."""
    what = f"the gallery's {root / MANIFEST}"
    seen: set[str] = set()
    for entry in manifest.shards:
        member(root / SHARDS, entry.name, SHARD, what)
        if entry.name in seen:
            raise UntrustedNameError(f"{what} names the shard {printable(entry.name)} twice; refused, nothing touched")
        seen.add(entry.name)


def read_manifest(root: Path) -> Manifest:
    """The manifest of gallery ``root``, refusing in one line what is not a gallery facebatch wrote:
    a name of its layout that is a symlink, a shard name that is not one of ours, a field of the wrong type."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise GalleryError(f"gallery path {root} is a file; a gallery is the folder 'facebatch index --out' writes")
    path = root / MANIFEST
    if root.is_dir():
        refuse_layout_links(root)
    if not os.path.lexists(path):
        raise GalleryError(
            f"{root} is not a gallery (no {MANIFEST}); make one with 'facebatch index PHOTOS... --out {root}'"
        )
    try:
        with open_regular(path, "the gallery's manifest") as handle:
            data = json.loads(handle.read())
    except OSError as exc:
        raise GalleryReadError(
            f"cannot read {path} ({exc.strerror or exc}); fix its permissions and run again"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:  # nesting deeper than Python's stack
        raise GalleryError(
            f"{path} is corrupt ({type(exc).__name__}: {exc}); index the photos again into a new --out"
        ) from None
    try:
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        if data.get("format") != GALLERY_FORMAT:
            found = printable(str(data.get("format")), 20)
            raise GalleryError(f"{path} is gallery format {found}, this facebatch reads {GALLERY_FORMAT}")
        manifest = Manifest.from_dict(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise GalleryError(
            f"{path} is corrupt ({type(exc).__name__}: {exc}); index the photos again into a new --out"
        ) from None
    check_shard_names(root, manifest)
    return manifest


def regular_file_sha256(path: Path) -> str | None:
    """The sha256 of a regular file (links not followed); None when it is not one or cannot be read."""
    try:
        with open_regular(path, "a file to remove") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except (OSError, UntrustedNameError):
        return None


def _entries(folder: Path) -> list[os.DirEntry]:
    """A folder's entries by name; none when it is not there (or not a folder: the caller refuses that)."""
    try:
        with os.scandir(folder) as entries:
            return sorted(entries, key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        return []


def _is_our_leftover(entry: os.DirEntry, in_shards: bool) -> bool:
    """An entry a killed writer of ours leaves (an uncommitted shard aside: the caller knows what is committed)."""
    if entry.is_dir(follow_symlinks=False):
        return not in_shards and bool(STAGING.fullmatch(entry.name))
    if not entry.is_file(follow_symlinks=False):
        return False
    temps = (SHARD_TEMP, PROBE) if in_shards else (*ROOT_TEMPS, PROBE)
    return any(pattern.fullmatch(entry.name) for pattern in temps)


def leftovers(root: Path, committed: set[str]) -> tuple[list[Path], list[str]]:
    """What an earlier writer left uncommitted, by facebatch's own names only (regular files and real
    folders: removable), and what else ``shards/`` holds (named, never touched). The root's other
    entries are the gallery's or the user's: neither listed nor touched."""
    ours = [Path(e.path) for e in _entries(root) if _is_our_leftover(e, in_shards=False)]
    foreign = []
    for entry in _entries(root / SHARDS):
        if entry.is_file(follow_symlinks=False) and entry.name in committed:
            continue
        if _is_our_leftover(entry, in_shards=True) or (
            entry.is_file(follow_symlinks=False) and SHARD.fullmatch(entry.name)
        ):
            ours.append(Path(entry.path))
        else:
            foreign.append(entry.name)
    return ours, foreign


def foreign_entries(root: Path) -> list[str]:
    """What a folder without a manifest holds that a killed first ``index`` run of ours cannot have left
    (its shards, the atomic writer's temp files, the lock, Ray's staging folder): such a folder is not ours."""
    found = []
    for entry in _entries(root):
        if entry.name == SHARDS and entry.is_dir(follow_symlinks=False):
            _, foreign = leftovers(root, set())
            found += [f"{SHARDS}/{name}" for name in foreign]
        elif not (
            (entry.name == LOCK and entry.is_file(follow_symlinks=False)) or _is_our_leftover(entry, in_shards=False)
        ):
            found.append(entry.name)
    return found


def _some(names: list[str]) -> str:
    """Up to five names from a folder facebatch does not trust, for one line."""
    return ", ".join(printable(name, 60) for name in names[:5]) + (" …" if len(names) > 5 else "")


def _private_folder(folder: Path, what: str) -> None:
    """``folder`` as a real folder (a symlink refused), made 0700 if it is not there."""
    refuse_symlinked_folder(folder, what)
    if not folder.is_dir():
        try:
            folder.mkdir(mode=PRIVATE_FOLDER)
        except OSError as exc:
            raise OutputError(f"cannot create {folder} ({exc.strerror}); pass a writable --out") from None


class Gallery:
    """An open gallery: its manifest, the latest state of each photo, and the shards' row offsets."""

    def __init__(self, root: Path, manifest: Manifest) -> None:
        self.root = Path(root)
        self.manifest = manifest
        self._offsets: list[int] = []
        self._count_rows()
        self._metadata: dict[int, Any] = {}  # shard position → its metadata table (search)
        self._written: dict[str, str] = {}  # shard name → sha256 of what this process wrote there: all it may remove

    def _count_rows(self) -> None:
        """Each shard's first global row id (and the total last), from the manifest's shards."""
        self._offsets = np.cumsum([0] + [s.rows for s in self.manifest.shards]).tolist()

    @property
    def shard_folder(self) -> Path:
        return self.root / SHARDS

    @property
    def index_path(self) -> Path:
        return self.root / INDEX_FILE

    @property
    def quarantine_folder(self) -> Path:
        return self.root / QUARANTINE

    @property
    def total_rows(self) -> int:
        return self._offsets[-1]

    # -- reading --------------------------------------------------------------------------------------
    @classmethod
    def open(cls, root: Path) -> Gallery:
        return cls(root, read_manifest(root))

    def read_shard(self, position: int, columns: list[str] | None = None):  # pa.Table
        return self._load_shard(position, columns)[0]

    def verify_shard(self, position: int) -> str:
        """The sha256 of shard ``position`` once it reads as committed; ShardDamaged or GalleryReadError if not."""
        return self._load_shard(position, ["photo"])[1]

    def _rebuild_shard_hint(self, name: str) -> str:
        return (
            f"index the same photos again ('facebatch index PHOTOS... --out {self.root}' moves {name} to "
            f"{self.quarantine_folder} and embeds its photos again), or into a new --out"
        )

    def _load_shard(self, position: int, columns: list[str] | None):  # (pa.Table, sha256)
        import pyarrow as pa
        import pyarrow.parquet as pq

        entry = self.manifest.shards[position]
        path = self.shard_folder / entry.name
        rebuild = self._rebuild_shard_hint(entry.name)
        data = self._shard_bytes(entry, path, rebuild)
        digest = hashlib.sha256(data).hexdigest()
        if entry.sha256 is not None and digest != entry.sha256:
            raise ShardDamaged(f"shard {path} is corrupt (not the bytes its commit recorded: another sha256)", rebuild)
        try:
            table = pq.read_table(pa.BufferReader(data), columns=columns)
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several kinds for bad bytes (in memory: no I/O here)
            reason = printable((str(exc).splitlines() or ["unreadable"])[0], 160)
            raise ShardDamaged(f"shard {path} is corrupt ({reason})", rebuild) from None
        if table.num_rows != entry.rows:
            raise ShardDamaged(f"shard {path} has {table.num_rows} rows, the manifest says {entry.rows}", rebuild)
        return table, digest

    def _shard_bytes(self, entry: ShardEntry, path: Path, rebuild: str) -> bytes:
        """A shard's bytes: damage (missing, another size) is ShardDamaged; a shard that cannot be read at all
        (permissions, an I/O error, the shards folder gone) is GalleryReadError, never taken for damage."""
        try:
            with open_regular(path, f"a shard {MANIFEST} names") as handle:
                size = os.fstat(handle.fileno()).st_size
                if size != entry.bytes:
                    raise ShardDamaged(
                        f"shard {path} is corrupt (it is {size} bytes, its commit recorded {entry.bytes})", rebuild
                    )
                return handle.read()
        except FileNotFoundError:
            self._require_shard_folder()
            raise ShardDamaged(f"shard {path} is missing", rebuild) from None
        except OSError as exc:
            raise GalleryReadError(
                f"cannot read shard {path} ({exc.strerror or exc}): fix its permissions or the filesystem and run "
                "again; nothing was changed"
            ) from None

    def _require_shard_folder(self) -> None:
        """A manifest that names shards in a shards/ that is gone (an unmounted share, a half copy): an error
        that stops the run with nothing changed, not a reason to drop every shard."""
        if self.manifest.shards and not self.shard_folder.is_dir():
            raise GalleryReadError(
                f"{self.shard_folder} is missing, and {MANIFEST} names {counted(len(self.manifest.shards), 'shard')} "
                "in it: restore or mount it and run again (nothing was changed), or index the photos into a new --out"
            )

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
        """The one writer: an exclusive lock, and what a killed writer left uncommitted removed (only that)."""
        refuse_layout_links(self.root)  # again: the folder may have changed since it was read
        self._require_shard_folder()
        _private_folder(self.shard_folder, "the gallery's shards folder")
        lock = self._lock()
        try:
            self._remove_uncommitted()
            try:
                yield self
            except BaseException:
                self._drop_shards_not_on_disk_manifest()
                raise
        finally:
            # nothing committed: leave no lock in a folder that is no gallery
            if not os.path.lexists(self.root / MANIFEST):
                (self.root / LOCK).unlink(missing_ok=True)
                with contextlib.suppress(OSError):
                    self.shard_folder.rmdir()  # empty unless a shard was written (then the next run removes it)
            os.close(lock)

    def _lock(self) -> int:
        """The lock file (0600, never through a link), locked; another writer holding it is refused."""
        path = self.root / LOCK
        try:
            descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, PRIVATE_FILE)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UntrustedNameError(f"{path} is a symlink; refused, nothing touched") from None
            raise OutputError(f"cannot open {path} ({exc.strerror}); pass a writable --out") from None
        try:
            if not stat.S_ISREG(os.fstat(descriptor).st_mode):
                raise UntrustedNameError(f"{path} is not a regular file; refused, nothing touched")
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(descriptor)
            raise OutputError(
                f"another 'facebatch index' is writing {self.root}; wait for it, or pass another --out"
            ) from None
        except BaseException:
            os.close(descriptor)
            raise
        return descriptor

    def _drop_shards_not_on_disk_manifest(self) -> None:
        """An interrupted writer (a signal, an error) may stop between a shard's write and the manifest
        that names it: that shard goes now, so that what stays is what was committed. The manifest on
        disk decides (the one in memory may already name a shard whose save never finished), and only
        a shard this process wrote, still holding the bytes it wrote, is removed."""
        try:
            on_disk = read_manifest(self.root) if os.path.lexists(self.root / MANIFEST) else None
        except FacebatchError:
            return  # never guess over a manifest that cannot be read: the next run says what is wrong
        named = {s.name for s in on_disk.shards} if on_disk else set()
        for name, digest in self._written.items():
            path = self.shard_folder / name
            if name in named or not os.path.lexists(path):
                continue
            if regular_file_sha256(path) == digest:
                path.unlink(missing_ok=True)
            else:
                warn(f"left {path}: it no longer holds the bytes this run wrote there")

    def _remove_uncommitted(self) -> None:
        """Shard files the manifest does not name (a killed run's), the atomic writer's temp files and Ray's
        staging folders: facebatch's own names only. Anything else in shards/ is named and left."""
        import shutil

        ours, foreign = leftovers(self.root, {s.name for s in self.manifest.shards})
        for path in ours:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        if ours:
            warn(f"removed {counted(len(ours), 'file')} an earlier index run left uncommitted in {self.root}")
        if foreign:
            shown = _some(foreign)
            warn(
                f"left {counted(len(foreign), 'entry', 'entries')} in {self.shard_folder} that facebatch did not write: "
                f"{shown} (it removes only its own uncommitted shard-NNNNN.parquet files)"
            )

    def next_shard_name(self) -> str:
        """The first shard-NNNNN.parquet from the shard count on that the manifest does not name and no
        entry in shards/ has (a foreign one included: it is never replaced)."""
        taken = {s.name for s in self.manifest.shards}
        number = len(self.manifest.shards)
        while (name := f"shard-{number:05d}.parquet") in taken or os.path.lexists(self.shard_folder / name):
            number += 1
        return name

    def write_shard(self, table) -> Path:  # pa.Table → its file (0600), not yet committed
        import pyarrow as pa
        import pyarrow.parquet as pq

        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="zstd")
        data = sink.getvalue().to_pybytes()
        target = self.shard_folder / self.next_shard_name()
        write_bytes_atomic(target, data, "--out", mode=PRIVATE_FILE)
        self._written[target.name] = hashlib.sha256(data).hexdigest()
        return target

    def commit(self, files: list[Path], states: dict[str, PhotoState]) -> int:
        """Name ``files`` (written shards, in order: this run's in shards/, or Ray's staged ones, moved in)
        in the manifest, with what they hold and their sha256: from this moment they are the gallery's.
        ``states`` is updated to match; the faces they add."""
        added = 0
        import pyarrow as pa
        import pyarrow.parquet as pq

        for path in files:
            with open_regular(path, "a shard this run wrote") as handle:
                data = handle.read()
            digest = hashlib.sha256(data).hexdigest()
            if path.parent == self.shard_folder:
                if self._written.get(path.name) != digest:
                    raise GalleryError(f"{path} is not the shard this run wrote (its bytes changed); run index again")
                target = path
            else:  # staged elsewhere (Ray's workers): moved in under the next name, private
                target = self.shard_folder / self.next_shard_name()
                os.chmod(path, PRIVATE_FILE)
                durable_replace(path, target)
                self._written[target.name] = digest
            table = pq.read_table(
                pa.BufferReader(data), columns=["photo", "face", "size", "mtime_ns", "subject", "error"]
            )
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
            faces_count = int((faces >= 0).sum())
            entry = ShardEntry(target.name, table.num_rows, faces_count, len(set(photos)), len(data), digest)
            self.manifest.shards.append(entry)
            added += faces_count
        self._count_rows()
        self.refresh_counts(states)
        self.save()
        return added

    def quarantine(self, entry: ShardEntry) -> Path | None:
        """Move a damaged shard's file to GALLERY/quarantine/<UTC time>-<name> (never deleted); None when there
        is no file to move (a missing shard)."""
        source = self.shard_folder / entry.name
        if not os.path.lexists(source):
            return None
        _private_folder(self.quarantine_folder, "the gallery's quarantine folder")
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        target, number = self.quarantine_folder / f"{stamp}-{entry.name}", 1
        while os.path.lexists(target):
            target, number = self.quarantine_folder / f"{stamp}-{number}-{entry.name}", number + 1
        durable_replace(source, target)
        fsync_path(self.shard_folder)
        return target

    def drop_shards(self, names: set[str]) -> None:
        """Take shards out of the manifest (their photos then count as new); the index, whose ids were rows of
        the shards before, is no longer current."""
        self.manifest.shards = [s for s in self.manifest.shards if s.name not in names]
        self.manifest.index = None
        self._count_rows()
        self._metadata.clear()

    def record_sha256(self, position: int, digest: str) -> None:
        """Record a sound shard's sha256 where an older manifest lacks it."""
        entry = self.manifest.shards[position]
        self.manifest.shards[position] = ShardEntry(
            entry.name, entry.rows, entry.faces, entry.photos, entry.bytes, digest
        )

    def refresh_counts(self, states: dict[str, PhotoState]) -> None:
        """Photos read and failed, from each photo's latest rows (a photo that failed and was read
        later counts as read)."""
        self.manifest.failed = [
            {"photo": photo, "error": state.error} for photo, state in states.items() if state.error is not None
        ]
        self.manifest.photos = sum(1 for s in states.values() if s.error is None)

    def save(self) -> None:
        self.manifest.updated = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        text = json.dumps(self.manifest.to_dict(), indent=1) + "\n"
        write_text_atomic(self.root / MANIFEST, text, "--out", mode=PRIVATE_FILE)


def make_gallery_folder(root: Path) -> None:
    """A new gallery's folder (0700 when facebatch makes it; an existing empty one keeps its mode) and its
    shards/ (0700)."""
    if not root.exists():
        ensure_writable_dir(root.parent if str(root.parent) else Path("."), "--out")
        try:
            root.mkdir(mode=PRIVATE_FOLDER)
        except OSError as exc:
            raise OutputError(f"cannot create {root} ({exc.strerror}); pass a writable --out") from None
        created_folder(root)  # removed at the end of a run that left it empty
    else:
        ensure_writable_dir(root, "--out")
    _private_folder(root / SHARDS, "the gallery's shards folder")


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
    or another --faces, so embeddings of two models never mix; and an existing folder without a
    manifest is taken only when all it holds is what a killed first run of ours leaves."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise GalleryError(f"gallery path {root} is a file; pass a folder as --out")
    if root.is_dir():
        refuse_layout_links(root)
    if not os.path.lexists(root / MANIFEST):
        foreign = foreign_entries(root) if root.is_dir() else []
        if foreign:
            shown = _some(foreign)
            raise OutputError(
                f"{root} exists and is not a gallery (no {MANIFEST}; it holds {shown}); pass a new or empty folder "
                "as --out (nothing was touched)"
            )
        make_gallery_folder(root)
        return Gallery(root, Manifest(detector, embedder, embedding_size, faces_mode, settings))
    gallery = Gallery.open(root)
    manifest = gallery.manifest
    for recorded, given in ((manifest.detector, detector), (manifest.embedder, embedder)):
        if recorded.sha256 != given.sha256:
            raise GalleryError(
                f"{root} was built with the {recorded.role} {printable(recorded.name, 80)} ({printable(recorded.file)}, "
                f"sha256 {recorded.sha256[:12]}…), not {given.name} ({given.sha256[:12]}…): embeddings "
                f"of two models must not mix; pass that {recorded.role}, or index into a new --out"
            )
    if manifest.faces_mode != faces_mode:
        raise GalleryError(f"{root} was built with --faces {manifest.faces_mode}; pass that, or index into a new --out")
    return gallery
