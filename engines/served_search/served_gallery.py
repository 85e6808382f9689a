"""The gallery a served face_search answers from, reloaded when a new version is committed.

``index`` commits a gallery by renaming a new manifest over the old one (engines/gallery/commit.py), after the
shards it names and, at the end of a run, the index over them are in place (each written under a temporary name
and renamed). So the manifest's identity (inode, size, mtime: one ``stat``, cheap enough for every request) says
when there is a new committed version. A reader never takes the gallery's lock (engines/gallery/lock.py): it is
the one writer's, and holding it would refuse the next ``index`` run. Instead a version is taken only when it opens
whole (``GallerySearch``: its index covers every shard, has the size and rows the manifest records; every shard's
rows read as committed, by sha256) and the manifest is still the one it opened; until then the last whole version
keeps answering. A version made with other models is refused (every request gets the one line) until the gallery
changes again.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from facebatch.core.errors import FacebatchError
from facebatch.engines.gallery.defaults import MANIFEST
from facebatch.engines.gallery.errors import GalleryError
from facebatch.engines.gallery.search import GallerySearch
from facebatch.engines.served_search.checks import OtherModels, check_gallery_models


@dataclass(frozen=True)
class ManifestStamp:
    """Which manifest file stands in the gallery: a commit renames a new file over it (a new inode)."""

    inode: int
    size: int
    mtime_ns: int


def manifest_stamp(root: Path) -> ManifestStamp | None:
    """The manifest's identity, not following a link (None: there is none)."""
    try:
        found = os.stat(Path(root) / MANIFEST, follow_symlinks=False)
    except OSError:
        return None
    return ManifestStamp(found.st_ino, found.st_size, found.st_mtime_ns)


def opened_whole(search: GallerySearch) -> GallerySearch:
    """Every shard's rows read now (each checked against its commit's sha256), so that answering never reads the
    disk: a later ``index`` run may move a damaged shard aside, this version stays whole."""
    start = 0
    for entry in search.gallery.manifest.shards:
        if entry.rows:
            search.gallery.face_record(start)
        start += entry.rows
    return search


class ServedGallery:
    """The current whole version of a gallery made with the served models; ``current()`` checks for a newer one."""

    def __init__(
        self,
        root: Path,
        sha256: Mapping[str, str],
        detector_size: Sequence[int],
        opener: Callable[[Path], GallerySearch] = GallerySearch,
    ) -> None:
        self.root = Path(root)
        self.sha256 = dict(sha256)
        self.detector_size = list(detector_size)
        self.opener = opener
        self.search: GallerySearch | None = None
        self.stamp: ManifestStamp | None = None  # of the version ``search`` holds
        self.refused: tuple[ManifestStamp | None, FacebatchError] | None = None  # a version made with other models
        self.pending: str | None = None  # why the newest version is not taken yet (not whole)
        self.loads = 0  # versions taken

    def current(self) -> GallerySearch:
        """The version to answer from: a newer committed one when it opens whole, else the one held. Raises the
        refusal of a version made with other models, and at the first load any reason it cannot be opened."""
        stamp = manifest_stamp(self.root)
        if self.search is not None and stamp == self.stamp:
            return self.search
        if self.refused is not None and self.refused[0] == stamp:
            raise self.refused[1]
        try:
            self.search, self.stamp = self._open(stamp), stamp
            self.refused, self.pending = None, None
            self.loads += 1
        except OtherModels as exc:
            self.refused = (stamp, exc)
            raise
        except FacebatchError as exc:
            if self.search is None:
                raise
            self.pending = str(exc)  # an index run between commits: the last whole version answers meanwhile
        return self.search

    def _open(self, stamp: ManifestStamp | None) -> GallerySearch:
        search = self.opener(self.root)
        check_gallery_models(self.root, search.gallery.manifest, self.sha256, self.detector_size)
        opened_whole(search)
        if manifest_stamp(self.root) != stamp:
            raise GalleryError(f"gallery {self.root} was committed again while it was read; read on the next request")
        return search
