"""Names read from folders facebatch did not necessarily make (a gallery's manifest, a Triton
repository's list of files, a release's MANIFEST.json): each must be one of the names facebatch
writes there and must stay inside its folder without following a symlink. Anything else is
refused by name, before anything is read, written or removed.

    path = member(gallery, "shards/shard-00003.parquet", SHARD_NAME, "the gallery's manifest")

Why not ``Path.resolve()`` and a prefix test: a symlink inside the folder that points back into
it would pass, and the next writer could still be redirected through it. Here every component of
the name is looked at with ``lstat`` and a symlink anywhere under the folder is refused, as is
an absolute name, ``..``, an empty component, a backslash or a control character.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from facebatch.core.errors import SpecError


class UntrustedNameError(SpecError):
    """A name or path read from a folder facebatch reads but does not trust: refused, nothing touched."""


# C0 and C1 controls (CSI is \x9b) and the invisible format characters that reorder or hide text (bidi
# overrides and isolates, zero-width ones): none is in a name facebatch writes
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
# a sha256 as facebatch records it in a manifest (lower-case hexadecimal)
SHA256 = re.compile(r"[0-9a-f]{64}")


def safe_relative(name: object, what: str) -> PurePosixPath:
    """``name`` as a relative POSIX path with no '..', no '.', no empty part; refused otherwise."""
    if not isinstance(name, str) or not name:
        raise UntrustedNameError(f"{what} names {name!r}, which is not a file name; refused, nothing touched")
    shown = printable(name)
    if CONTROL_CHARACTERS.search(name) or "\\" in name:
        raise UntrustedNameError(
            f"{what} names {shown}, a name with control characters or '\\'; refused, nothing touched"
        )
    path = PurePosixPath(name)
    if path.is_absolute() or name.startswith("/"):
        raise UntrustedNameError(f"{what} names the absolute path {shown}; refused, nothing touched")
    parts = name.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise UntrustedNameError(
            f"{what} names {shown}, which leaves its folder or is not plain; refused, nothing touched"
        )
    return path


def member(folder: Path, name: object, pattern: re.Pattern[str] | str, what: str) -> Path:
    """``folder/name`` where ``name`` fully matches ``pattern`` (one of facebatch's own names), is
    relative and plain, and no part of it under ``folder`` is a symlink. ``what`` says where the
    name was read ("the gallery's manifest.json"), for the one-line refusal."""
    relative = safe_relative(name, what)
    compiled = re.compile(pattern) if isinstance(pattern, str) else pattern
    if not compiled.fullmatch(str(relative)):
        raise UntrustedNameError(
            f"{what} names {printable(str(relative))}, which is not a name facebatch writes there; refused, nothing touched"
        )
    path = Path(folder) / relative
    refuse_symlinks(Path(folder), relative, what)
    return path


def refuse_symlinks(folder: Path, relative: PurePosixPath | str, what: str) -> None:
    """Refuse when any existing part of ``folder/relative`` below ``folder`` is a symlink (a part
    that does not exist yet is fine: nothing can be redirected through it)."""
    current = Path(folder)
    for part in PurePosixPath(relative).parts:
        current = current / part
        try:
            mode = os.lstat(current).st_mode
        except FileNotFoundError:
            return
        except OSError as exc:
            raise UntrustedNameError(f"{what}: {current} cannot be examined ({exc.strerror}); refused") from None
        if stat.S_ISLNK(mode):
            raise UntrustedNameError(
                f"{current} is a symlink ({what} names it); facebatch does not follow links in a folder it did not "
                "make: replace the link with the real file or folder"
            )


def refuse_symlinked_folder(folder: Path, what: str) -> None:
    """A folder facebatch will write into or clean must not itself be a symlink."""
    if Path(folder).is_symlink():
        raise UntrustedNameError(
            f"{folder} is a symlink ({what}); facebatch does not write or clean through links: pass the real folder"
        )


def walk_files(folder: Path) -> Iterator[tuple[str, os.stat_result]]:
    """Every entry under ``folder`` as (relative POSIX path, lstat), links not followed: a check that
    vouches for a folder walks the whole folder. Folders themselves are not yielded; symlinks and
    other non-regular entries are (the caller decides what to make of them)."""
    folder = Path(folder)
    stack = [PurePosixPath()]
    while stack:
        relative = stack.pop()
        with os.scandir(folder / relative) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                rel = relative / entry.name
                info = entry.stat(follow_symlinks=False)
                if stat.S_ISDIR(info.st_mode):
                    stack.append(rel)
                else:
                    yield str(rel), info


def printable(text: str, limit: int = 200) -> str:
    """``text`` quoted for one line of output: control characters and terminal escapes shown as
    escapes, never sent to the terminal."""
    return repr(text[:limit] + ("…" if len(text) > limit else ""))
