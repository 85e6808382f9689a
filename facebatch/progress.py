"""Visible progress for long work: a spinner per step, then a tick with its duration."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator

from rich.console import Console

console = Console(stderr=True, highlight=False, soft_wrap=True)  # logs keep long paths on one line


@contextlib.contextmanager
def step(label: str) -> Iterator[None]:
    start = time.perf_counter()
    if console.is_terminal:
        with console.status(f"{label} …"):
            yield
    else:
        print(f"… {label}", file=sys.stderr, flush=True)
        yield
    console.print(f"[green]✓[/green] {label} [dim]({time.perf_counter() - start:.1f}s)[/dim]")


def warn(message: str) -> None:
    console.print(f"[bold yellow]WARNING[/bold yellow] {message}")


@contextlib.contextmanager
def progress_bar(total: int, label: str) -> Iterator[Callable[[str], None]]:
    """A bar over ``total`` steps; yields ``advance(what)``, called after each step. On a
    terminal it is a live bar; in logs each step is one line, so CI shows progress too."""
    start = time.perf_counter()
    if console.is_terminal:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task(label, total=total)
            yield lambda what: bar.update(task, advance=1, description=f"{label}: {what}")
    else:
        done = 0

        def advance(what: str) -> None:
            nonlocal done
            done += 1
            print(f"… {label} [{done}/{total}] {what}", file=sys.stderr, flush=True)

        yield advance
    console.print(f"[green]✓[/green] {label} [dim]({time.perf_counter() - start:.1f}s)[/dim]")
