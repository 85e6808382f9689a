"""Map any SCRFD graph's raw outputs to our layout: ``{"score_8": [N, rows, 1], ...}``.

Works by shape, not by name or order, so it reads the official model-pack files (2-D,
numeric names, batch folded into rows in (y, x, n, anchor) order), third-party re-exports
(``out0..out8``) and our own artifacts alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from facebatch.configs.scrfd import OUTPUT_CHANNELS
from facebatch.configs.spec import HeadLayout
from facebatch.core.errors import SpecError

KIND_BY_CHANNELS = {channels: kind for kind, channels in OUTPUT_CHANNELS.items()}


def unfold_official_rows(rows_2d: np.ndarray, batch: int, grid: tuple[int, int], anchors: int) -> np.ndarray:
    """[H'·W'·N·A, C] from a Transpose(2,3,0,1)→Reshape(-1,C) head → [N, H'·W'·A, C]."""
    h, w = grid
    channels = rows_2d.shape[-1]
    return (
        rows_2d.reshape(h, w, batch, anchors, channels)
        .transpose(2, 0, 1, 3, 4)
        .reshape(batch, h * w * anchors, channels)
    )


def canonical_outputs(
    raw: Sequence[np.ndarray],
    layout: HeadLayout,
    height: int,
    width: int,
    batch: int,
) -> dict[str, np.ndarray]:
    """Name each raw output by its channel count (kind) and row count (stride)."""
    by_rows = {layout.rows(s, height, width): s for s in layout.strides}
    named: dict[str, np.ndarray] = {}
    for array in raw:
        kind = KIND_BY_CHANNELS.get(array.shape[-1])
        if kind is None or array.ndim not in (2, 3):
            raise SpecError(f"output of shape {list(array.shape)} is not an SCRFD score/bbox/kps map")
        rows = array.shape[-2] if array.ndim == 3 else array.shape[0] // batch
        if rows not in by_rows:
            raise SpecError(f"output of shape {list(array.shape)} matches no stride at input {height}x{width}")
        stride = by_rows[rows]
        if array.ndim == 2:
            grid = (height // stride, width // stride)
            array = unfold_official_rows(array, batch, grid, layout.anchors_per_location)
        if array.shape[0] != batch:
            raise SpecError(f"output {kind}_{stride} has batch {array.shape[0]}, expected {batch}")
        name = f"{kind}_{stride}"
        if name in named:
            raise SpecError(f"two outputs look like {name}; cannot map this graph's outputs")
        named[name] = array
    missing = [n for n in layout.output_names() if n not in named]
    if missing:
        raise SpecError(f"graph outputs lack {', '.join(missing)}")
    return named
