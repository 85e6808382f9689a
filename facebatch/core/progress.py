"""How long work reports itself: steps (a label, then its duration), progress over a known
number of items, and warnings, through the ``facebatch`` logger and a replaceable reporter.

A program that calls facebatch sees nothing unless it asks: the ``facebatch`` logger has only a
``NullHandler``, and the default ``LogReporter`` writes steps and progress as INFO records of
``facebatch.progress`` (``logging.basicConfig(level=logging.INFO)`` shows them). Warnings are
WARNING records of ``facebatch``; notes (a choice the library made for the caller: which file it
picked, which twin runs) are INFO records of ``facebatch.notes``. ``reporting(reporter)`` routes steps and bars elsewhere for a
while (the command line installs a terminal renderer: spinners, bars, one line per step in logs).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
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


_reporter: Reporter = LogReporter()


@contextlib.contextmanager
def reporting(reporter: Reporter) -> Iterator[Reporter]:
    """Send steps and progress to ``reporter`` inside the block (the previous one after it)."""
    global _reporter
    previous, _reporter = _reporter, reporter
    try:
        yield reporter
    finally:
        _reporter = previous


@contextlib.contextmanager
def step(label: str) -> Iterator[None]:
    """One step of long work: reported when it starts and, with its duration, when it ends."""
    with _reporter.step(label):
        yield


@contextlib.contextmanager
def progress_bar(total: int, label: str) -> Iterator[Advance]:
    """Progress over ``total`` items; yields ``advance(what)``, called after each."""
    with _reporter.bar(total, label) as advance:
        yield advance


def warn(message: str) -> None:
    """Something the user should know that does not stop the work."""
    logger.warning(message)


def note(message: str) -> None:
    """A choice made on the caller's behalf that they may want to know (which file was picked, what runs)."""
    notes_logger.info(message)
