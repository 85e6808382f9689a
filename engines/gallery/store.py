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
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from facebatch.core.errors import OutputError
from facebatch.core.trusted_paths import printable
from facebatch.engines.gallery.commit import GalleryCommits
from facebatch.engines.gallery.defaults import LOCK, MANIFEST
from facebatch.engines.gallery.errors import GalleryError
from facebatch.engines.gallery.layout import (
    foreign_entries,
    make_gallery_folder,
    private_folder,
    refuse_layout_links,
    some_names,
)
from facebatch.engines.gallery.lock import lock_gallery
from facebatch.engines.gallery.manifest import Manifest, ModelIdentity
from facebatch.engines.gallery.photos import Photo
from facebatch.engines.gallery.rows import PhotoState


class Gallery(GalleryCommits):
    """An open gallery: its manifest, the latest state of each photo, the shards' row offsets (``GalleryRows``);
    the one writer's commits (``GalleryCommits``) under ``writing``."""

    @contextlib.contextmanager
    def writing(self) -> Iterator[Gallery]:
        """The one writer: an exclusive lock, and what a killed writer left uncommitted removed (only that)."""
        refuse_layout_links(self.root)  # again: the folder may have changed since it was read
        self._require_shard_folder()
        private_folder(self.shard_folder, "the gallery's shards folder")
        lock = lock_gallery(self.root)
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
    or another faces mode, so embeddings of two models never mix; and an existing folder without a
    manifest is taken only when all it holds is what a killed first run of ours leaves."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise GalleryError(f"gallery path {root} is a file; pass a folder as out", field="out")
    if root.is_dir():
        refuse_layout_links(root)
    if not os.path.lexists(root / MANIFEST):
        foreign = foreign_entries(root) if root.is_dir() else []
        if foreign:
            raise OutputError(
                f"out {root} exists and is not a gallery (no {MANIFEST}; it holds {some_names(foreign)}); pass a new "
                "or empty folder (nothing was touched)",
                field="out",
            )
        make_gallery_folder(root)
        return Gallery(root, Manifest(detector, embedder, embedding_size, faces_mode, settings))
    gallery = Gallery.open(root)
    _refuse_other_models(gallery, detector, embedder)
    if gallery.manifest.faces_mode != faces_mode:
        raise GalleryError(
            f"faces {faces_mode} is not how the gallery {root} was built (faces {gallery.manifest.faces_mode}); pass "
            "that, or index into another folder",
            field="faces",
        )
    return gallery


def _refuse_other_models(gallery: Gallery, detector: ModelIdentity, embedder: ModelIdentity) -> None:
    """Embeddings of two models never mix: the models given must be those the gallery was built with (by sha256)."""
    manifest = gallery.manifest
    for recorded, given in ((manifest.detector, detector), (manifest.embedder, embedder)):
        if recorded.sha256 != given.sha256:
            raise GalleryError(
                f"{recorded.role} {given.name} ({given.sha256[:12]}…) is not the one the gallery {gallery.root} was "
                f"built with: {printable(recorded.name, 80)} ({printable(recorded.file)}, sha256 "
                f"{recorded.sha256[:12]}…); embeddings of two models must not mix: pass that {recorded.role}, or "
                "index into another folder",
                field=recorded.role,
            )
