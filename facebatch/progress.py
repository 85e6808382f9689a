"""Visible progress for long work: a spinner per step, then a tick with its duration."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator

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
