"""Atomic artifact writes: a temp file beside the target, then one rename.

A failed run never leaves a half-written file where a good one stood, and never a
temp file behind. The rename is durable: the file's data is flushed to disk before it is
renamed and the folder after (``durable_replace``), so a power cut cannot leave a manifest that
names a file whose bytes never reached the disk.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from facebatch.core.errors import OutputError
from facebatch.core.run import created_folder


def field_of(name: str) -> str:
    """The field an output is named by: ``out``, ``json`` (a caller may still say ``--out``: the CLI names the flag
    from the field, the library's messages never do)."""
    return name.lstrip("-").replace("-", "_")


def ensure_writable_dir(directory: Path, field: str = "out") -> Path:
    """Create ``directory`` if needed and prove we can write into it; ``field`` is the option
    that named it, so the message says what to change."""
    directory, field = Path(directory), field_of(field)
    if directory.exists() and not directory.is_dir():
        raise OutputError(f"output path {directory} exists and is not a directory; change {field}", field=field)
    missing = [d for d in (directory, *directory.parents) if not d.exists()]
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"cannot create output directory {directory}: {exc.strerror}; pass a writable {field}", field=field
        ) from exc
    for folder in missing:  # removed at the end of a run that left them empty
        created_folder(folder)
    try:
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".facebatch-probe-"):
            pass
    except OSError as exc:
        raise OutputError(
            f"output directory {directory} is not writable ({exc.strerror}); pass a writable {field}", field=field
        ) from exc
    return directory


class InputFiles:
    """The files a command reads: an output that is one of them (by its own name, a symlink, another
    hard link, or a path such as ``new_dir/../photo.jpg`` whose folder does not exist yet) is refused.
    ``folders`` are input folders, each with the suffixes of the files read from it (None: every
    file, e.g. a gallery or a model repository); a file under one counts when it exists. Built once;
    each test is a ``realpath`` and a ``stat``."""

    def __init__(self, paths: Iterable[Path] = (), folders: Iterable[tuple[Path, Iterable[str] | None]] = ()) -> None:
        self._ids: set[tuple[int, int]] = set()
        self._paths: set[str] = set()
        for path in paths:
            self._paths.add(os.path.realpath(path))
            with contextlib.suppress(OSError):
                info = os.stat(path)
                self._ids.add((info.st_dev, info.st_ino))
        self._folders = [
            (os.path.realpath(folder), None if suffixes is None else {s.lower() for s in suffixes})
            for folder, suffixes in folders
        ]

    def __contains__(self, path: object) -> bool:
        if not isinstance(path, (str, os.PathLike)):
            return False
        real = os.path.realpath(path)  # '..' after a folder that does not exist yet: resolved by its name
        if real in self._paths:
            return True
        try:
            info = os.stat(real)
        except OSError:
            return False
        if (info.st_dev, info.st_ino) in self._ids:
            return True
        for folder, suffixes in self._folders:
            inside = real.startswith(folder.rstrip(os.sep) + os.sep)
            if inside and (suffixes is None or os.path.splitext(real)[1].lower() in suffixes):
                return True
        return False


def _as_inputs(inputs: Iterable[Path] | InputFiles) -> InputFiles:
    return inputs if isinstance(inputs, InputFiles) else InputFiles(inputs)


def check_not_input(target: Path, field: str, inputs: Iterable[Path] | InputFiles) -> None:
    """Refuse an output ``target`` that is an existing folder or one of ``inputs`` (no other I/O)."""
    target, field = Path(target), field_of(field)
    if target.is_dir():
        raise OutputError(
            f"{field} {target} is an existing folder; name a file (e.g. {target / 'out'}{target.suffix})", field=field
        )
    if inputs and target in _as_inputs(inputs):  # no inputs (every atomic write): no lookup
        raise OutputError(
            f"{field} {target} is one of the inputs; facebatch never overwrites an input: name another file",
            field=field,
        )


def check_output_file(target: Path, field: str, inputs: Iterable[Path] | InputFiles = ()) -> Path:
    """Refuse, before any work, an output file that cannot be what it should: an existing folder, one
    of the command's ``inputs`` (facebatch never overwrites what it reads), or in a folder that cannot
    be written. ``field`` names the option that chose ``target``, so the message says what to change."""
    target = Path(target)
    check_not_input(target, field, inputs)
    ensure_writable_dir(target.parent if str(target.parent) else Path("."), field)
    return target


def check_output_folder(folder: Path, field: str) -> Path:
    """Refuse, before any work, an output folder that is a file or cannot be written (its files are
    checked against the inputs one by one, by ``check_not_input``)."""
    folder, field = Path(folder), field_of(field)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{field} {folder} is a file; name a folder", field=field)
    return ensure_writable_dir(folder, field)


@contextlib.contextmanager
def atomic_path(target: Path, field: str = "out", mode: int | None = None) -> Iterator[Path]:
    """Yield a temp path beside ``target``; on success rename it over ``target`` (durably), with
    ``mode`` (default: what the umask gives a new file).

    On any exception the temp file is removed and ``target`` is left untouched.
    """
    target = check_output_file(target, field)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, mode if mode is not None else file_mode())  # mkstemp makes 0600; artifacts get the usual mode
        durable_replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def fsync_path(path: Path) -> None:
    """Flush a file's (or a folder's entries') data to disk. A filesystem that cannot sync a folder
    (some network and FUSE ones refuse) is left as it is: the rename itself still happened."""
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if Path(path).is_dir() else 0))
    try:
        os.fsync(fd)
    except OSError:
        if not Path(path).is_dir():
            raise
    finally:
        os.close(fd)


def durable_replace(source: Path, target: Path) -> None:
    """``os.replace`` with the data of ``source`` on disk before the rename and the rename itself
    on disk after it (the folder synced): what a commit rename needs to survive a power cut."""
    if Path(source).is_file():
        fsync_path(source)
    os.replace(source, target)
    fsync_path(Path(target).parent)


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


def write_bytes_atomic(target: Path, data: bytes, field: str = "out", mode: int | None = None) -> None:
    with atomic_path(target, field, mode) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(target: Path, text: str, field: str = "out", mode: int | None = None) -> None:
    write_bytes_atomic(target, text.encode("utf-8"), field, mode)
