"""A gallery folder's names, and what facebatch trusts in it.

Every name facebatch writes in a gallery matches one of its own patterns exactly (full matches on a
folder's entries, never a glob); no name of the layout (the manifest, ``shards/``, the index, the lock,
``quarantine/``) may be a symlink; files are opened without following links and never block on a FIFO.
Clean-ups list only facebatch's own leftovers (uncommitted shards, the atomic writer's temp files,
Ray's staging folders); anything else is named and left. What facebatch creates is private: folders
0700, files 0600.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from facebatch.core.atomic import ensure_writable_dir
from facebatch.core.errors import OutputError
from facebatch.core.run import created_folder
from facebatch.core.trusted_paths import UntrustedNameError, printable, refuse_symlinked_folder, refuse_symlinks
from facebatch.engines.gallery.defaults import (
    INDEX_FILE,
    LOCK,
    MANIFEST,
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


def some_names(names: list[str]) -> str:
    """Up to five names from a folder facebatch does not trust, for one line."""
    return ", ".join(printable(name, 60) for name in names[:5]) + (" …" if len(names) > 5 else "")


def private_folder(folder: Path, what: str) -> None:
    """``folder`` as a real folder (a symlink refused), made 0700 if it is not there."""
    refuse_symlinked_folder(folder, what)
    if not folder.is_dir():
        try:
            folder.mkdir(mode=PRIVATE_FOLDER)
        except OSError as exc:
            raise OutputError(
                f"cannot create {what} {folder} ({exc.strerror}); fix the gallery's permissions and run again"
            ) from None


def make_gallery_folder(root: Path) -> None:
    """A new gallery's folder (0700 when facebatch makes it; an existing empty one keeps its mode) and its
    shards/ (0700)."""
    if not root.exists():
        ensure_writable_dir(root.parent if str(root.parent) else Path("."), "out")
        try:
            root.mkdir(mode=PRIVATE_FOLDER)
        except OSError as exc:
            raise OutputError(
                f"out {root}: cannot create it ({exc.strerror}); pass a writable folder", field="out"
            ) from None
        created_folder(root)  # removed at the end of a run that left it empty
    else:
        ensure_writable_dir(root, "out")
    private_folder(root / SHARDS, "the gallery's shards folder")
