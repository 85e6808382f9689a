"""The input sizes verify checks a graph at: the ones given, each refused if the graph (or its
reference) cannot run it; by default the graph's own, plus a second one where the size is
symbolic, since people run such a graph at several (non-square, or square where one symbol names
height and width)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from facebatch.configs.graph_size import square_size_allowed
from facebatch.configs.model_file import ModelFile
from facebatch.core.errors import SpecError
from facebatch.verify.reference import Reference
from facebatch.verify.report import size_text


def non_square_size(size: tuple[int, int], multiple: int) -> tuple[int, int]:
    """A second size for graphs with a symbolic input size: 320x320 → 320x480; a non-square
    size is turned around."""
    height, width = size
    if height != width:
        return width, height
    return height, math.ceil(width * 1.5 / multiple) * multiple


def second_square_size(size: tuple[int, int], multiple: int) -> tuple[int, int]:
    """A second size for graphs that take square inputs only: half the first, on the stride grid
    (640 → 320)."""
    side = max(multiple, round(size[0] / 2 / multiple) * multiple)
    return side, side


def check_sizes(
    target: ModelFile, sizes: Sequence[tuple[int, int]] | None, reference: Reference | None = None
) -> list[tuple[int, int]]:
    """The input sizes to check at: the given ones, each refused if the graph (or the reference)
    cannot run it; by default the target's own, plus a second one for a symbolic size: non-square,
    or square where either graph names height and width with one symbol."""
    spec = target.spec
    symbol = target.shared_size_symbol or (reference.shared_size_symbol if reference is not None else None)
    if sizes is None:
        if target.fixed_size or spec.family.is_embedder:
            return [spec.input_size]
        if symbol is not None:
            return [spec.input_size, second_square_size(spec.input_size, spec.size_multiple)]
        return [spec.input_size, non_square_size(spec.input_size, spec.size_multiple)]
    sizes = list(dict.fromkeys(tuple(s) for s in sizes))
    if spec.family.is_embedder and len(sizes) > 1:
        raise SpecError(
            f"{target.path.name} is an embedder: it takes one input size, got {', '.join(map(size_text, sizes))}",
            field="sizes",
        )
    checked = [target.checked_size(size) for size in sizes]
    if reference is not None and reference.shared_size_symbol is not None:
        for size in checked:
            square_size_allowed(f"the reference {reference.name}", reference.shared_size_symbol, size)
    return checked


def square_note(target: ModelFile, reference: Reference | None, sizes: list[tuple[int, int]]) -> list[str]:
    """Say so when a symbol shared by height and width limited the sizes checked."""
    named = [(target.path.name, target.shared_size_symbol)] + (
        [(reference.name, reference.shared_size_symbol)] if reference else []
    )
    for name, symbol in named:
        if symbol is not None and not target.fixed_size:
            return [
                f"{name} names its input height and width with one symbol {symbol!r}: checked at square sizes only "
                f"({', '.join(map(size_text, sizes))})"
            ]
    return []
