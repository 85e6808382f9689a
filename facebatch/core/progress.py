"""How long work reports itself: steps (a label, then its duration), progress over a known
number of items, and warnings, through the ``facebatch`` logger and a replaceable reporter.

A program that calls facebatch sees nothing unless it asks: the ``facebatch`` logger has only a
``NullHandler``, and the default ``LogReporter`` writes steps and progress as INFO records of
``facebatch.progress`` (``logging.basicConfig(level=logging.INFO)`` shows them). Warnings are
WARNING records of ``facebatch``; notes (a choice the library made for the caller: which file it
picked, which twin runs) are INFO records of ``facebatch.notes``. ``reporting(reporter)`` routes steps and bars elsewhere for a
while (the command line installs a terminal renderer: spinners, bars, one line per step in logs); the reporter is
the calling thread's (a ``contextvars.ContextVar``), so two threads reporting to two reporters never mix.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from contextvars import ContextVar
from typing import Protocol

logger = logging.getLogger("facebatch")
logger.addHandler(logging.NullHandler())
progress_logger = logging.getLogger("facebatch.progress")
notes_logger = logging.getLogger("facebatch.notes")

Advance = Callable[[str], None]


class Reporter(Protocol):
    """Where steps and progress go."""

    def step(self, label: str) -> AbstractContextManager[None]: ...

    def bar(self, total: int, label: str) -> AbstractContextManager[Advance]: ...


class LogReporter:
    """Steps and progress as INFO log records (the library's default)."""

    @contextlib.contextmanager
    def step(self, label: str) -> Iterator[None]:
        start = time.perf_counter()
        progress_logger.info("… %s", label)
        yield
        progress_logger.info("✓ %s (%.1fs)", label, time.perf_counter() - start)

    @contextlib.contextmanager
    def bar(self, total: int, label: str) -> Iterator[Advance]:
        start = time.perf_counter()
        done = 0

        def advance(what: str) -> None:
            nonlocal done
            done += 1
            progress_logger.info("… %s [%d/%d] %s", label, done, total, what)

        yield advance
        progress_logger.info("✓ %s (%.1fs)", label, time.perf_counter() - start)


_LOG_REPORTER = LogReporter()  # stateless: one serves every thread
# per context, not per process: a thread (or a run in it, facebatch.core.run) reports to its own (None: the log)
_reporter: ContextVar[Reporter | None] = ContextVar("facebatch_reporter", default=None)


def current_reporter() -> Reporter:
    """Where this thread's steps and progress go now."""
    return _reporter.get() or _LOG_REPORTER


@contextlib.contextmanager
def reporting(reporter: Reporter) -> Iterator[Reporter]:
    """Send this thread's steps and progress to ``reporter`` inside the block (the previous one after it)."""
    token = _reporter.set(reporter)
    try:
        yield reporter
    finally:
        _reporter.reset(token)


@contextlib.contextmanager
def step(label: str) -> Iterator[None]:
    """One step of long work: reported when it starts and, with its duration, when it ends."""
    with current_reporter().step(label):
        yield


@contextlib.contextmanager
def progress_bar(total: int, label: str) -> Iterator[Advance]:
    """Progress over ``total`` items; yields ``advance(what)``, called after each."""
    with current_reporter().bar(total, label) as advance:
        yield advance


def warn(message: str, field: str | None = None) -> None:
    """Something the user should know that does not stop the work; ``field``: the option it is about (the
    CLI names it as its flag, as it does for errors)."""
    logger.warning(message, extra={"facebatch_field": field})


def note(message: str) -> None:
    """A choice made on the caller's behalf that they may want to know (which file was picked, what runs)."""
    notes_logger.info(message)
