"""Atomic artifact writes: a temp file beside the target, then one rename.

A failed run never leaves a half-written file where a good one stood, and never a
temp file behind.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from facebatch.errors import OutputError
from facebatch.interrupts import created_folder


def ensure_writable_dir(directory: Path, flag: str = "--out") -> Path:
    """Create ``directory`` if needed and prove we can write into it; ``flag`` is the option
    that named it, so the message says what to change."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise OutputError(f"output path {directory} exists and is not a directory; change {flag}")
    missing = [d for d in (directory, *directory.parents) if not d.exists()]
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"cannot create output directory {directory}: {exc.strerror}; pass a writable {flag}"
        ) from exc
    for folder in missing:  # removed at the end of a run that left them empty
        created_folder(folder)
    try:
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".facebatch-probe-"):
            pass
    except OSError as exc:
        raise OutputError(
            f"output directory {directory} is not writable ({exc.strerror}); pass a writable {flag}"
        ) from exc
    return directory


@contextlib.contextmanager
def atomic_path(target: Path, flag: str = "--out") -> Iterator[Path]:
    """Yield a temp path beside ``target``; on success rename it over ``target``.

    On any exception the temp file is removed and ``target`` is left untouched.
    """
    target = Path(target)
    ensure_writable_dir(target.parent, flag)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, file_mode())  # mkstemp makes 0600; artifacts get the usual mode
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode a new file gets under this process's umask (mkstemp's files are 0600)."""
    return 0o666 & ~_umask()


def dir_mode() -> int:
    """The mode a new folder gets under this process's umask (mkdtemp's are 0700)."""
    return 0o777 & ~_umask()


def write_bytes_atomic(target: Path, data: bytes, flag: str = "--out") -> None:
    with atomic_path(target, flag) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(target: Path, text: str, flag: str = "--out") -> None:
    write_bytes_atomic(target, text.encode("utf-8"), flag)
