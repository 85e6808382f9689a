"""A gallery's errors: one that cannot be used as it is, one that cannot be read, a damaged shard."""

from __future__ import annotations

from facebatch.core.errors import SpecError


class GalleryError(SpecError):
    """A gallery that cannot be used as it is: says which file and how to rebuild."""


class GalleryReadError(GalleryError):
    """A gallery file that is there but cannot be read (permissions, an I/O error, the shards folder gone): an
    error that stops the run, never taken for damage; nothing is moved or removed."""

    exit_code = 1


class ShardDamaged(GalleryError):
    """A shard that reads, but not as it was committed (its size, its sha256, Parquet, its rows), or is missing:
    ``index`` moves it to the quarantine and indexes its photos again; ``search`` names it."""

    def __init__(self, problem: str, remedy: str) -> None:
        super().__init__(f"{problem}; {remedy}")
        self.problem = problem  # what is wrong, without the remedy (index applies one itself)


REASON_CHARS = 160  # another library's reason for damage, quoted in one line


def clipped(text: str, limit: int = REASON_CHARS) -> str:
    """The first line of another library's message (pyarrow's, FAISS's) for one line of ours: whole, or cut at
    the last space before ``limit`` with "…" (never mid-word)."""
    line = (text.strip().splitlines() or ["unreadable"])[0]
    if len(line) <= limit:
        return line
    cut = line.rfind(" ", 0, limit)
    return line[: cut if cut > 0 else limit].rstrip() + " …"
