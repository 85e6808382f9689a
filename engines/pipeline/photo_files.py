"""Which photos a command takes: the files and folders a caller names, as photo files, each once. One
rule for every command that reads photos (detect, embed, index, search, and the proof photos of verify,
fix, convert, quantize, build, bench and release): a folder is walked with its subfolders, a folder's
photos in name order before its subfolders' (each in name order), by ``IMAGE_SUFFIXES``.

Inside a folder nothing is trusted that the caller did not name: hidden entries (a name starting with
'.': ``.thumbnails/``, macOS's ``._photo.jpg``) and links (a link can lead out of the folder) are not
read, nor anything that is not a regular file (a FIFO would block the reader); each kind skipped is said
in one line that names a few. A path named outright is taken as named. Light: no OpenCV, so the command
line can use it while it parses."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from facebatch.core.errors import SpecError
from facebatch.core.progress import note, warn
from facebatch.core.trusted_paths import printable
from facebatch.core.words import counted, natural_key

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
SHOWN = 3  # skipped entries named in a line; the rest counted


def is_photo_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


@dataclass
class FolderWalk:
    """A folder's photos, and what was skipped in it (relative names, a folder's with a trailing '/')."""

    photos: list[Path] = field(default_factory=list)
    hidden: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    special: list[str] = field(default_factory=list)  # neither a regular file nor a folder (a FIFO, a socket)
    unreadable: list[str] = field(default_factory=list)  # subfolders that could not be listed


def walk_photos(folder: Path) -> FolderWalk:
    """The photos under ``folder`` by the rule above, without saying what was skipped."""
    walk, pending = FolderWalk(), [Path(folder)]
    while pending:
        current = pending.pop()
        try:
            with os.scandir(current) as scanned:
                entries = sorted(scanned, key=lambda e: natural_key(e.name))  # img1, img2, img10
        except OSError as exc:
            if current == Path(folder):
                raise SpecError(
                    f"{folder} cannot be read ({exc.strerror or exc}); pass a folder you can read"
                ) from None
            walk.unreadable.append(os.path.relpath(current, folder) + "/")
            continue
        subfolders = []
        for entry in entries:
            relative = os.path.relpath(entry.path, folder)
            if entry.is_symlink():
                if entry.is_dir() or is_photo_name(entry.name):  # a link to a folder, or to what may be a photo
                    walk.links.append(relative + ("/" if entry.is_dir() else ""))
            elif not (entry.is_file() or entry.is_dir()):
                if is_photo_name(entry.name):
                    walk.special.append(relative)
            elif entry.name.startswith("."):
                if entry.is_dir() or is_photo_name(entry.name):
                    walk.hidden.append(relative + ("/" if entry.is_dir() else ""))
            elif entry.is_dir():
                subfolders.append(Path(entry.path))
            elif is_photo_name(entry.name):
                walk.photos.append(Path(entry.path))
        pending += reversed(subfolders)  # the first subfolder next
    return walk


def _named(names: list[str]) -> str:
    shown = ", ".join(printable(name, 80) for name in names[:SHOWN])
    return shown + (f" and {len(names) - SHOWN} more" if len(names) > SHOWN else "")


def folder_photos(folder: Path) -> list[Path]:
    """The photos under ``folder`` (``walk_photos``), saying in a line each what was skipped: hidden entries
    (a note); links, special files and unreadable folders (warnings: they may hold photos the caller meant)."""
    walk = walk_photos(folder)
    where = printable(str(folder), 120)
    if walk.hidden:
        note(f"skipped {counted(len(walk.hidden), 'hidden entry', 'hidden entries')} in {where}: {_named(walk.hidden)}")
    if walk.links:
        warn(
            f"skipped {counted(len(walk.links), 'link')} in {where}: "
            f"{_named(walk.links)}; links inside a photo folder are not followed: name a linked photo itself, or "
            "copy it into the folder"
        )
    if walk.special:
        warn(
            f"skipped {counted(len(walk.special), 'special file')} in {where} (neither a file nor a folder): {_named(walk.special)}"
        )
    if walk.unreadable:
        warn(
            f"skipped {counted(len(walk.unreadable), 'folder')} in {where} that cannot be read: {_named(walk.unreadable)}"
        )
    return walk.photos


def where_looked(paths: Sequence[Path]) -> str:
    """'no photos (.jpg, …) in nest or its subfolders': where a search for photos looked, and what it takes."""
    named = ", ".join(str(p) for p in paths[:SHOWN]) + (f" and {len(paths) - SHOWN} more" if len(paths) > SHOWN else "")
    their = "its" if len(paths) == 1 else "their"
    return f"no photos ({', '.join(IMAGE_SUFFIXES)}) in {named} or {their} subfolders"


def image_files(path: Path) -> list[Path]:
    """The photos a path names: the file itself (a photo by its suffix), or a folder's photos and its subfolders'."""
    path = Path(path)
    if path.is_file():
        if not is_photo_name(path.name):
            raise SpecError(
                f"{path} is not an image file ({', '.join(IMAGE_SUFFIXES)}); pass a photo or a folder of photos"
            )
        return [path]
    if not path.is_dir():
        raise SpecError(f"{path} does not exist; pass a photo or a folder of photos")
    return folder_photos(path)


def proof_photos(paths: Sequence[Path], field: str = "photos") -> list[Path]:
    """The photos ``paths`` name for a proof (calibration, frames), each a photo or a folder of photos (walked
    with its subfolders), each once; refused in one line, about ``field``, when a path names none."""
    found: list[Path] = []
    for path in map(Path, paths):
        try:
            photos = image_files(path)
        except SpecError as exc:
            raise SpecError(f"{field}: {exc}", field=field) from None
        if not photos:
            raise SpecError(f"{field}: {where_looked([path])}; pass a photo or a folder of photos", field=field)
        found += photos
    return list(dict.fromkeys(found))


def collect_images(paths: Sequence[Path], field: str | None = None) -> list[Path]:
    """Every photo the arguments name, in their order (folders walked with their subfolders), each once;
    a file named outright is taken whatever its suffix (if it does not decode, the pipeline
    says so and goes on); refuses paths that do not exist and arguments that name nothing."""
    found: list[Path] = []
    for path in map(Path, paths):
        try:
            found += [path] if path.is_file() else image_files(path)
        except SpecError as exc:
            raise SpecError(str(exc), field=field) from None
    if not found:
        raise SpecError(f"{where_looked([Path(p) for p in paths])}; pass photos or folders of photos", field=field)
    return list(dict.fromkeys(found))
