"""Value parsers for argparse: one text → one typed value, or an argparse error that says what a
good value looks like (the CLI prints it in one line)."""

from __future__ import annotations

import argparse
from pathlib import Path

from facebatch.core.errors import SpecError
from facebatch.exporter.defaults import OPSET_RANGE, check_opset

STDOUT = Path("-")  # a report target that means standard output


def parse_size(text: str) -> tuple[int, int]:
    """'320' → (320, 320); '480x640' → (480, 640) as height x width."""
    try:
        parts = [int(p) for p in text.lower().split("x")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r} is not N or HxW (e.g. 320 or 480x640)") from None
    if len(parts) not in (1, 2) or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"size {text!r} is not N or HxW of positive numbers (e.g. 320 or 480x640)")
    return parts[0], parts[-1]


def parse_sizes(text: str) -> tuple[tuple[int, int], ...]:
    """'320,320x480' → ((320, 320), (320, 480))."""
    return tuple(parse_size(part) for part in text.split(",") if part.strip())


def parse_batch_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"batch sizes {text!r} are not comma-separated integers") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("batch sizes must be positive integers, e.g. 1,2,7,32")
    return sizes


def parse_batch_size(text: str) -> int:
    try:
        size = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected one batch size (a positive integer such as 8), got {text!r}"
        ) from None
    if size < 1:
        raise argparse.ArgumentTypeError(f"a batch size is a positive integer such as 8, got {size}")
    return size


def parse_cosine(text: str) -> float:
    """A cosine similarity threshold: a number in [-1, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a cosine between -1 and 1, got {text!r}") from None
    if not -1.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"a cosine lies between -1 and 1, got {text}")
    return value


def parse_floats(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number or R,G,B numbers") from None
    if len(values) not in (1, 3):
        raise argparse.ArgumentTypeError(f"{text!r}: give one number or three (R,G,B)")
    return values


def parse_opset(text: str) -> int:
    try:
        opset = int(text)
        check_opset(opset)
    except ValueError:
        raise argparse.ArgumentTypeError(f"opset {text!r} is not a number") from None
    except SpecError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return opset


OPSET_HELP = f"supported {OPSET_RANGE[0]}–{OPSET_RANGE[1]}"
