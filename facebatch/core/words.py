"""Numbers in words: counts ('1 face', '2 faces') and shares ('26 %'), so messages and reports read as sentences."""

from __future__ import annotations

import re
from pathlib import PurePath


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """``count`` and ``noun``, in the plural unless there is exactly one."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"


def percent(share: float | None) -> str:
    """A fraction as a whole percentage ('26 %'), or '–' where it is not known."""
    return "–" if share is None else f"{100 * share:.0f} %"


def natural_key(name: str | PurePath) -> list[tuple[str | int, ...]]:
    """A sort key that orders names as people count: img1, img2, img10 (digits by their value, the rest
    case-blind), folder by folder for a path (each part its own tuple: text and numbers alternate in it)."""
    parts = PurePath(name).parts if isinstance(name, PurePath) else (name,)
    return [
        tuple(int(piece) if piece.isdigit() else piece.casefold() for piece in re.split(r"(\d+)", part))
        for part in parts
    ]
