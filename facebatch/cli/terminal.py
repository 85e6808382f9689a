"""What the command line shows while the library works: the library reports through logging
and ``facebatch.core.progress``; this renders it on stderr (a spinner per step and a bar on a
terminal, one line per step and item in logs, so CI shows progress too; warnings in yellow)."""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.markup import escape

from facebatch.core.progress import Advance, logger, notes_logger, reporting
from facebatch.core.trusted_paths import CONTROL_CHARACTERS

console = Console(stderr=True, highlight=False, soft_wrap=True)  # logs keep long paths on one line


def visible(text: str) -> str:
    """``text`` with every control character shown as an escape (``\\x1b``): photo names, paths and
    gallery strings come from archives facebatch does not trust, and must not drive the terminal."""
    return CONTROL_CHARACTERS.sub(lambda m: m.group() if m.group() == "\t" else _escaped(m.group()), text)


def _escaped(character: str) -> str:
    return character.encode("unicode_escape").decode("ascii")


def literal(text: str) -> str:
    """``text`` for ``Console.print``: control characters visible, and Rich markup (``[red]``) shown as
    typed instead of interpreted."""
    return escape(visible(text))


def _line(text: str) -> None:
    """One write per line: print's text and newline are two, and a signal between them would put the
    next line (the one that says the run was interrupted) at the end of this one."""
    sys.stderr.write(visible(text) + "\n")
    sys.stderr.flush()


class TerminalReporter:
    """``facebatch.core.progress.Reporter`` for the command line."""

    def __init__(self, out: Console) -> None:
        self.console = out

    @contextlib.contextmanager
    def step(self, label: str) -> Iterator[None]:
        start = time.perf_counter()
        if self.console.is_terminal:
            with self.console.status(f"{literal(label)} …"):
                yield
        else:
            _line(f"… {label}")
            yield
        self.console.print(f"[green]✓[/green] {literal(label)} [dim]({time.perf_counter() - start:.1f}s)[/dim]")

    @contextlib.contextmanager
    def bar(self, total: int, label: str) -> Iterator[Advance]:
        start = time.perf_counter()
        if self.console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
            with Progress(*columns, console=self.console, transient=True) as bar:
                task = bar.add_task(literal(label), total=total)
                yield lambda what: bar.update(task, advance=1, description=f"{literal(label)}: {literal(what)}")
        else:
            done = 0

            def advance(what: str) -> None:
                nonlocal done
                done += 1
                _line(f"… {label} [{done}/{total}] {what}")

            yield advance
        self.console.print(f"[green]✓[/green] {literal(label)} [dim]({time.perf_counter() - start:.1f}s)[/dim]")


FieldNamer = Callable[[str, "str | None"], str]  # (message, field) → the message with the field named as its flag


class _WarningHandler(logging.Handler):
    """The library's warnings in yellow (a warning about one option names its flag), and its notes
    (``facebatch.core.progress.note``) as 'note:' lines."""

    def __init__(self, out: Console, name_field: FieldNamer | None = None) -> None:
        super().__init__(logging.INFO)
        self.console = out
        self.name_field = name_field

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING:
            message, field = record.getMessage(), getattr(record, "facebatch_field", None)
            if field and self.name_field is not None:
                message = self.name_field(message, field)
            self.console.print(f"[bold yellow]WARNING[/bold yellow] {literal(message)}")
        elif record.name == notes_logger.name:
            _line(f"note: {record.getMessage()}")


@contextlib.contextmanager
def terminal_output(verbose: bool = False, name_field: FieldNamer | None = None) -> Iterator[None]:
    """The library's steps, progress and warnings rendered on stderr for one command. Other
    libraries' log records (onnxruntime, onnxscript, …) are shown only with ``--verbose``: they
    would come before our one error line and say nothing a user can act on."""
    handler = _WarningHandler(console, name_field)
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)  # notes are INFO records (setLevel: it clears logging's cached checks too)
    logger.propagate = False  # ours are rendered here, not again by a root handler
    root = logging.getLogger()
    others: logging.Handler = logging.StreamHandler(sys.stderr) if verbose else logging.NullHandler()
    root.addHandler(others)  # a handler keeps logging's last-resort printer quiet
    try:
        with reporting(TerminalReporter(console)):
            yield
    finally:
        root.removeHandler(others)
        logger.propagate = True
        logger.setLevel(level)
        logger.removeHandler(handler)
