"""A run: one command's worth of work and what belongs to it alone — the output folders it created
(removed at its end while still empty, so a run that wrote nothing leaves no empty folder behind)
and, when it names one, the reporter its steps and progress go to.

The current run is a ``contextvars.ContextVar``, as is the reporter (``facebatch.core.progress``):
each thread has its own, so two runs side by side never see each other's folders or reporter, and
outside a run nothing is recorded — a library call made by a long-lived program leaves nothing
behind in the process. The command line enters one ``Run`` per command; a program may enter its own
around library calls (``with Run(): facebatch.index(...)``). A thread starts outside every run (it
does not inherit its starter's context); the work a run hands to threads reports and records nothing.
"""

from __future__ import annotations

import contextlib
from contextvars import ContextVar, Token
from pathlib import Path
from types import TracebackType

from facebatch.core.progress import Reporter, reporting

_current: ContextVar[Run | None] = ContextVar("facebatch_run", default=None)


class Run:
    """What one run owns; a context manager, entered once."""

    def __init__(self, reporter: Reporter | None = None) -> None:
        self.reporter = reporter  # None: whichever reporter the caller's context has
        self.created: list[Path] = []  # the folders this run made, in the order it made them
        self.removed: list[Path] = []  # those it removed at its end, still empty
        self._token: Token[Run | None] | None = None
        self._reporting = contextlib.ExitStack()

    def __enter__(self) -> Run:
        if self._token is not None:
            raise RuntimeError("this Run is already entered: enter a new Run for another run")
        self._token = _current.set(self)
        if self.reporter is not None:
            self._reporting.enter_context(reporting(self.reporter))
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        assert self._token is not None, "a Run is left where it was entered"
        try:
            self._reporting.close()
            self.removed = self.remove_empty_folders()
        finally:
            _current.reset(self._token)
            self._token = None

    def remove_empty_folders(self) -> list[Path]:
        """Remove the folders this run created that are still empty, deepest first; returns them."""
        removed = []
        for folder in sorted(set(self.created), key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):  # not empty, gone already, or not ours to remove
                folder.rmdir()
                removed.append(folder)
        self.created.clear()
        return removed


def current_run() -> Run | None:
    """The run this thread is in, or None."""
    return _current.get()


def created_folder(folder: Path) -> None:
    """``folder`` did not exist before the current run made it (outside a run: nothing is recorded)."""
    run = _current.get()
    if run is not None:
        run.created.append(Path(folder))
