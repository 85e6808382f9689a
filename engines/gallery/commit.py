"""Writing a gallery's shards: each written under a temporary name and renamed (private to its owner),
then committed by the manifest that names it with its sha256; a shard that does not read as committed
is moved to ``quarantine/``, never deleted; what a killed writer left uncommitted is removed, by
facebatch's own names only, and a shard this run wrote only while it still holds the bytes it wrote."""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from pathlib import Path

from facebatch.core.atomic import durable_replace, fsync_path, write_bytes_atomic
from facebatch.core.errors import FacebatchError
from facebatch.core.progress import warn
from facebatch.core.words import counted
from facebatch.engines.gallery.defaults import MANIFEST, PRIVATE_FILE
from facebatch.engines.gallery.errors import GalleryError
from facebatch.engines.gallery.layout import (
    leftovers,
    open_regular,
    private_folder,
    regular_file_sha256,
    some_names,
)
from facebatch.engines.gallery.manifest import Manifest, ShardEntry, read_manifest, write_manifest
from facebatch.engines.gallery.rows import GalleryRows, PhotoState


class GalleryCommits(GalleryRows):
    """An open gallery that this process writes (under the lock: ``Gallery.writing``)."""

    def __init__(self, root: Path, manifest: Manifest) -> None:
        super().__init__(root, manifest)
        self._written: dict[str, str] = {}  # shard name → sha256 of what this process wrote there: all it may remove

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
        ours, foreign = leftovers(self.root, {s.name for s in self.manifest.shards})
        for path in ours:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        if ours:
            warn(f"removed {counted(len(ours), 'file')} an earlier index run left uncommitted in {self.root}")
        if foreign:
            shown = some_names(foreign)
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
        write_bytes_atomic(target, data, "out", mode=PRIVATE_FILE)
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
        private_folder(self.quarantine_folder, "the gallery's quarantine folder")
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
        """Commit the manifest in memory: from now on it is the gallery's."""
        write_manifest(self.root, self.manifest)
