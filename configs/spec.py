"""Model specs as values: tensors, axes, preprocessing and tolerances in one place.

ONNX dynamic axes, symbolic dim names and (later) TensorRT profiles are derived from a
``ModelSpec``; nothing downstream writes them a second time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np

from facebatch.errors import SpecError

Dim = Union[int, str]
BATCH = "batch"


@dataclass(frozen=True)
class ShapeRange:
    """A min/opt/max range, e.g. the batch sizes an engine profile covers."""

    min: int
    opt: int
    max: int

    def __post_init__(self) -> None:
        if not 1 <= self.min <= self.opt <= self.max:
            raise SpecError(f"shape range must satisfy 1 <= min <= opt <= max, got {self.min}/{self.opt}/{self.max}")


@dataclass(frozen=True)
class Normalize:
    """Pixel preprocessing outside the graph: ``(pixel - mean) / std`` in the given colour order."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    rgb: bool  # True: the model wants RGB; images are read as BGR by OpenCV

    def apply(self, image_bgr: np.ndarray) -> np.ndarray:
        """HWC uint8 BGR image -> CHW float32 normalised tensor."""
        pixels = image_bgr[..., ::-1] if self.rgb else image_bgr
        mean = np.asarray(self.mean, dtype=np.float32)
        std = np.asarray(self.std, dtype=np.float32)
        chw = ((pixels.astype(np.float32) - mean) / std).transpose(2, 0, 1)
        return np.ascontiguousarray(chw)

    def to_dict(self) -> dict[str, Any]:
        return {"mean": list(self.mean), "std": list(self.std), "color_order": "RGB" if self.rgb else "BGR"}


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output: its name, dims (ints fixed, strings symbolic) and tolerances."""

    name: str
    dims: tuple[Dim, ...]
    atol: float = 1e-4
    rtol: float = 0.0
    min_cosine: float | None = None  # embeddings: compare direction per row as well

    def symbolic_axes(self) -> dict[int, str]:
        return {axis: dim for axis, dim in enumerate(self.dims) if isinstance(dim, str)}

    def concrete_shape(self, sizes: Mapping[str, int]) -> tuple[int, ...]:
        """Resolve symbolic dims with ``sizes`` (e.g. {"batch": 4})."""
        shape = []
        for dim in self.dims:
            if isinstance(dim, int):
                shape.append(dim)
            elif dim in sizes:
                shape.append(int(sizes[dim]))
            else:
                raise SpecError(f"tensor {self.name!r}: no size given for symbolic dim {dim!r}")
        return tuple(shape)


@dataclass(frozen=True)
class ModelSpec:
    """Everything a runner, verifier or engine builder needs to know about one artifact."""

    name: str  # variant, e.g. "scrfd_10g_bnkps"
    family: str  # "scrfd" | "arcface" | "embedder"
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    normalize: Normalize
    batch: ShapeRange = ShapeRange(1, 16, 32)
    default_filename: str = ""
    details: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        names = [t.name for t in self.inputs + self.outputs]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise SpecError(f"spec {self.name}: tensor names used twice: {', '.join(duplicates)}")
        for tensor in self.inputs + self.outputs:
            if not tensor.dims or tensor.dims[0] != BATCH:
                raise SpecError(f"spec {self.name}: tensor {tensor.name!r} must have {BATCH!r} as dim 0, got {tensor.dims}")

    @property
    def input(self) -> TensorSpec:
        if len(self.inputs) != 1:
            raise SpecError(f"spec {self.name} has {len(self.inputs)} inputs; name the one you mean")
        return self.inputs[0]

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]

    def output(self, name: str) -> TensorSpec:
        for tensor in self.outputs:
            if tensor.name == name:
                return tensor
        raise SpecError(f"spec {self.name} has no output {name!r}; outputs are {', '.join(self.output_names)}")

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        """ONNX ``dynamic_axes``: tensor name -> {axis: symbol}."""
        return {t.name: t.symbolic_axes() for t in self.inputs + self.outputs if t.symbolic_axes()}

    def symbols(self) -> set[str]:
        return {s for axes in self.dynamic_axes().values() for s in axes.values()}
