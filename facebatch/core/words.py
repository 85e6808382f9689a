"""Numbers in words: counts ('1 face', '2 faces') and shares ('26 %'), so messages and reports read as sentences."""

from __future__ import annotations


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """``count`` and ``noun``, in the plural unless there is exactly one."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"


def percent(share: float | None) -> str:
    """A fraction as a whole percentage ('26 %'), or '–' where it is not known."""
    return "–" if share is None else f"{100 * share:.0f} %"
