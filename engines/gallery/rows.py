"""Reading a gallery's rows: each shard's bytes checked against what its commit recorded (size, sha256,
Parquet, rows), each photo's latest rows (a photo indexed again lives in its newest shard; its older rows
are dead), the live faces for the index, and a global row id (the index's ids) → its shard and row.

A shard that reads, but not as committed, is ``ShardDamaged``; one that cannot be read at all
(permissions, an I/O error, the shards folder gone) is ``GalleryReadError`` and stops the run."""

from __future__ import annotations

import hashlib
import os
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import numpy as np

from facebatch.core.trusted_paths import printable
from facebatch.core.words import counted
from facebatch.engines.gallery.defaults import INDEX_FILE, MANIFEST, QUARANTINE, SHARDS
from facebatch.engines.gallery.errors import GalleryError, GalleryReadError, ShardDamaged, clipped
from facebatch.engines.gallery.layout import open_regular
from facebatch.engines.gallery.manifest import Manifest, ShardEntry, read_manifest


@dataclass
class PhotoState:
    shard: int  # position in the manifest's shard list
    key: tuple[int, int, str | None]
    error: str | None


class GalleryRows:
    """An open gallery, read: its manifest, the latest state of each photo, and the shards' row offsets."""

    def __init__(self, root: Path, manifest: Manifest) -> None:
        self.root = Path(root)
        self.manifest = manifest
        self._offsets: list[int] = []
        self._count_rows()
        self._metadata: dict[int, Any] = {}  # shard position → its metadata table (search)

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
    def open(cls, root: Path) -> Self:
        return cls(root, read_manifest(root))

    def read_shard(self, position: int, columns: list[str] | None = None):  # pa.Table
        return self._load_shard(position, columns)[0]

    def verify_shard(self, position: int) -> str:
        """The sha256 of shard ``position`` once it reads as committed; ShardDamaged or GalleryReadError if not."""
        return self._load_shard(position, ["photo"])[1]

    def _rebuild_shard_hint(self, name: str) -> str:
        return (
            f"indexing the same photos into {self.root} again repairs it: it moves {name} to "
            f"{self.quarantine_folder} and embeds those photos again (nothing to edit by hand)"
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
            reason = printable(clipped(str(exc)))
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
                "in it: restore or mount it and run again (nothing was changed), or index the photos into a new gallery"
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
        return f"rebuild it by indexing into {self.root} again (no photos needed: it is built from the shards)"
