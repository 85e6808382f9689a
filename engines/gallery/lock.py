"""One writer at a time: ``index`` holds an exclusive lock on ``GALLERY/.lock`` while it writes (the
kernel drops it when the process dies, SIGKILL too), so a second writer is refused at once."""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from pathlib import Path

from facebatch.core.errors import OutputError
from facebatch.core.trusted_paths import UntrustedNameError
from facebatch.engines.gallery.defaults import LOCK, PRIVATE_FILE


def lock_gallery(root: Path) -> int:
    """The lock file (0600, never through a link), locked; another writer holding it is refused. Its
    descriptor: closing it unlocks."""
    path = Path(root) / LOCK
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, PRIVATE_FILE)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UntrustedNameError(f"{path} is a symlink; refused, nothing touched") from None
        raise OutputError(
            f"out {root}: cannot open its lock {LOCK} ({exc.strerror}); pass a writable folder", field="out"
        ) from None
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise UntrustedNameError(f"{path} is not a regular file; refused, nothing touched")
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(descriptor)
        raise OutputError(
            f"out {root}: another index run is writing this gallery; wait for it, or index into another folder",
            field="out",
        ) from None
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor
