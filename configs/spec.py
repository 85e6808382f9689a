"""Model specs as values: tensors, axes, preprocessing, tolerances and what the outputs
mean, in one place, as typed fields.

ONNX dynamic axes, symbolic dim names and (later) TensorRT profiles are derived from a
``ModelSpec``; nothing downstream writes them a second time, and nothing reads a spec by
string key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

import numpy as np

from facebatch.configs.precision import Precision, fp16_tolerances, fp32_tolerances, int8_tolerances, output_role
from facebatch.core.errors import SpecError

Dim = int | str
BATCH = "batch"
HEIGHT, WIDTH = "height", "width"  # the symbols of a symbolic input size
SEEDED_TAG = "_seeded"  # in default file names of artifacts with seeded random weights


class Family(str, Enum):
    """What kind of model a spec describes; the value is what files and reports say."""

    SCRFD = "scrfd"  # an SCRFD face detector (ours or anyone's)
    ARCFACE = "arcface"  # an ArcFace embedder exported by facebatch (rebuildable in torch)
    EMBEDDER = "embedder"  # any other face embedder, described by a spec

    @property
    def is_embedder(self) -> bool:
        return self is not Family.SCRFD


@dataclass(frozen=True)
class HeadLayout:
    """What an SCRFD head emits: one score/bbox(/kps) output per stride, ``anchors_per_location``
    rows per grid cell, rows in (y, x, anchor) order."""

    strides: tuple[int, ...]
    anchors_per_location: int
    use_kps: bool

    @property
    def kinds(self) -> tuple[str, ...]:
        return ("score", "bbox", "kps") if self.use_kps else ("score", "bbox")

    def output_names(self) -> list[str]:
        """Official order: scores s8/16/32, bboxes s8/16/32, then kps."""
        return [f"{kind}_{stride}" for kind in self.kinds for stride in self.strides]

    def rows(self, stride: int, height: int, width: int) -> int:
        return (height // stride) * (width // stride) * self.anchors_per_location

    @property
    def size_multiple(self) -> int:
        """Input sizes must be multiples of the coarsest stride."""
        return max(self.strides)


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
        return self.apply_batch(image_bgr[None])[0]

    def apply_batch(self, images_bgr: np.ndarray) -> np.ndarray:
        """NHWC uint8 BGR images -> NCHW float32 normalised tensor, in one pass."""
        pixels = images_bgr[..., ::-1] if self.rgb else images_bgr
        mean = np.asarray(self.mean, dtype=np.float32)
        std = np.asarray(self.std, dtype=np.float32)
        nchw = ((pixels.astype(np.float32) - mean) / std).transpose(0, 3, 1, 2)
        return np.ascontiguousarray(nchw)

    def to_dict(self) -> dict[str, Any]:
        return {"mean": list(self.mean), "std": list(self.std), "color_order": "RGB" if self.rgb else "BGR"}


def limit_text(atol: float, rtol: float) -> str:
    """An element bound |actual − expected| ≤ atol + rtol·|expected| in words."""
    return f"{atol:g}" if not rtol else f"{atol:g} + {rtol:g}·|ref|"


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

    def tolerance_text(self) -> str:
        """The element bound in words: 'atol' or 'atol + rtol·|ref|'."""
        return limit_text(self.atol, self.rtol)

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


def fp32_output(name: str, dims: tuple[Dim, ...], embedder: bool) -> TensorSpec:
    """An FP32 output with the tolerances of its role (an embedding, or an SCRFD score, box or
    landmark output told by its channels: configs.precision.fp32_tolerances)."""
    atol, rtol, cosine = fp32_tolerances(output_role(embedder, dims[-1]))
    return TensorSpec(name, tuple(dims), atol=atol, rtol=rtol, min_cosine=cosine)


@dataclass(frozen=True)
class ModelSpec:
    """Everything a runner, verifier or engine builder needs to know about one artifact."""

    name: str  # variant or network, e.g. "scrfd_10g_bnkps", "arcface_r50"
    family: Family
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    normalize: Normalize
    input_size: tuple[int, int]  # height, width the artifact was made (or is checked) at
    batch: ShapeRange = ShapeRange(1, 16, 32)
    default_filename: str = ""
    dynamic_size: bool = False  # height and width symbolic too
    head: HeadLayout | None = None  # SCRFD detectors
    embedding_size: int | None = None  # embedders: values per frame
    alignment_template: tuple[tuple[float, float], ...] | None = None  # embedders: 5 points (x, y)
    precision: Precision = Precision.FP32  # what the graph computes in; its outputs' tolerances follow it
    # Free text for people reading the metadata (output layout, letterbox, alignment); code never reads it.
    descriptions: Mapping[str, str] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "family", Family(self.family))
        object.__setattr__(self, "precision", Precision(self.precision))
        names = [t.name for t in self.inputs + self.outputs]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise SpecError(f"spec {self.name}: tensor names used twice: {', '.join(duplicates)}")
        for tensor in self.inputs + self.outputs:
            if not tensor.dims or tensor.dims[0] != BATCH:
                raise SpecError(
                    f"spec {self.name}: tensor {tensor.name!r} must have {BATCH!r} as dim 0, got {tensor.dims}"
                )
        if len(self.input_size) != 2 or min(self.input_size) < 1:
            raise SpecError(
                f"spec {self.name}: input size must be two positive numbers (height, width), got {self.input_size}"
            )
        if (self.family is Family.SCRFD) != (self.head is not None):
            raise SpecError(f"spec {self.name}: an SCRFD detector has a head layout and nothing else does")
        if self.family.is_embedder and not self.embedding_size:
            raise SpecError(f"spec {self.name}: an embedder spec needs its embedding size")

    def require_fp32(self, name: str | None = None) -> None:
        """Refuse to reduce the precision of a graph that is already reduced (``name``: its file)."""
        if self.precision is not Precision.FP32:
            raise SpecError(f"{name or self.name} is already {self.precision.value}; convert its FP32 artifact")

    def at_fp16(self, seeded: bool = False) -> ModelSpec:
        """This spec for the FP16 conversion of its graph: every output takes the FP16
        tolerances of its role (configs.precision; wider for seeded weights), never tighter
        than it had."""
        self.require_fp32()
        outputs = []
        for tensor in self.outputs:
            atol, rtol, cosine = fp16_tolerances(output_role(self.family.is_embedder, tensor.dims[-1]), seeded)
            outputs.append(
                replace(
                    tensor,
                    atol=max(atol, tensor.atol),
                    rtol=max(rtol, tensor.rtol),
                    min_cosine=None if tensor.min_cosine is None else cosine,
                )
            )
        return replace(self, outputs=tuple(outputs), precision=Precision.FP16)

    def at_int8(self, min_cosine: float | None = None) -> ModelSpec:
        """This spec for the INT8 quantisation of its graph: every output takes the INT8
        tolerances of its role, never tighter than it had; ``min_cosine``: the embedding
        cosine the quantisation was accepted at (default INT8_MIN_COSINE)."""
        if self.precision is not Precision.FP32:
            raise SpecError(f"spec {self.name} is {self.precision.value}; quantise the FP32 artifact")
        outputs = []
        for tensor in self.outputs:
            atol, rtol, cosine = int8_tolerances(output_role(self.family.is_embedder, tensor.dims[-1]))
            cosine = cosine if min_cosine is None or cosine is None else min(cosine, min_cosine)
            outputs.append(
                replace(
                    tensor,
                    atol=max(atol, tensor.atol),
                    rtol=max(rtol, tensor.rtol),
                    min_cosine=None if tensor.min_cosine is None else cosine,
                )
            )
        return replace(self, outputs=tuple(outputs), precision=Precision.INT8)

    @property
    def size_multiple(self) -> int:
        """What every input height and width must be a multiple of (SCRFD: its coarsest stride)."""
        return self.head.size_multiple if self.head is not None else 1

    def batch_profile(self, size: tuple[int, int] | None = None) -> dict[str, tuple[tuple[int, ...], ...]]:
        """Per input, the (min, opt, max) shapes of an optimisation profile over the batch range
        at ``size`` (default: the spec's): what TensorRT (engine or execution provider) is given."""
        height, width = size or self.input_size
        sizes = {HEIGHT: height, WIDTH: width}
        return {
            t.name: tuple(
                t.concrete_shape({**sizes, BATCH: n}) for n in (self.batch.min, self.batch.opt, self.batch.max)
            )
            for t in self.inputs
        }

    def check_batch(self, batch: int) -> None:
        if not self.batch.min <= batch <= self.batch.max:
            raise SpecError(f"batch size {batch} is outside {self.name}'s profile {self.batch.min}–{self.batch.max}")

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
