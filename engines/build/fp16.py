"""FP32 ONNX → FP16 ONNX with onnxconverter-common's float16 converter (the one Polygraphy's
``--fp-to-fp16`` calls), keeping what facebatch needs of the graph:

* inputs and outputs stay FP32 (Cast nodes at the edges) unless ``fp16_io``: callers keep
  feeding what preprocessing makes;
* the op block list is the converter's own default (Resize, TopK, NonMaxSuppression, Range,
  Min/Max, …: ops whose FP16 kernels lose indices or coordinates), nothing more. Measured on
  SCRFD-2.5G, SCRFD-10G and ArcFace R50 (docs/fp16.md): blocking any further op type
  (Add, Relu, Sigmoid, PRelu, BatchNormalization, Gemm, the head's last convolutions)
  changes the largest FP16 error by less than 5 %; only blocking Conv removes it, which is
  FP32;
* the batch axis stays the symbol it was on every input and output, checked here after
  conversion (``check_batch_kept``);
* weights below FP16's range are flushed and those above clamped, and counted rather than
  warned about one by one.

The spec travels along with FP16 tolerances (``ModelSpec.at_fp16``) and the metadata
records the precision and the source file's sha256.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from facebatch.configs.precision import Precision
from facebatch.configs.spec import ModelSpec
from facebatch.configs.spec_io import SPEC_PROP, spec_to_dict
from facebatch.core.errors import SpecError
from facebatch.core.onnx_graph import io_dims

INSTALL_HINT = "pip install onnxconverter-common"
# The converter's own bounds: smaller magnitudes become ±1e-7, larger ones ±1e4.
MIN_POSITIVE = 1e-7
MAX_FINITE = 1e4


@dataclass
class Fp16Conversion:
    model: onnx.ModelProto
    spec: ModelSpec
    fp16_io: bool
    op_block_list: tuple[str, ...]
    flushed: int  # weight values with 0 < |w| < MIN_POSITIVE, raised to it
    clamped: int  # weight values with |w| > MAX_FINITE, lowered to it

    def describe(self) -> str:
        io = "FP16 inputs and outputs" if self.fp16_io else "FP32 inputs and outputs (Cast at the edges)"
        return (
            f"{io}; {len(self.op_block_list)} op types kept FP32 ({', '.join(self.present_blocked)} in this graph); "
            f"{self.flushed} tiny weights raised to {MIN_POSITIVE:g}, {self.clamped} huge ones clamped to {MAX_FINITE:g}"
        )

    @property
    def present_blocked(self) -> list[str]:
        present = sorted({n.op_type for n in self.model.graph.node if n.op_type in self.op_block_list})
        return present or ["none"]


def default_op_block_list() -> tuple[str, ...]:
    return tuple(_converter().DEFAULT_OP_BLOCK_LIST)


def _converter():  # the onnxconverter_common.float16 module
    try:
        from onnxconverter_common import float16
    except ImportError:
        raise SpecError(f"FP16 conversion needs onnxconverter-common: {INSTALL_HINT}") from None
    return float16


def out_of_range_weights(model: onnx.ModelProto) -> tuple[int, int]:
    """(values the conversion raises to ±MIN_POSITIVE, values it clamps to ±MAX_FINITE) among
    the FP32 initializers."""
    flushed = clamped = 0
    for tensor in model.graph.initializer:
        if tensor.data_type != onnx.TensorProto.FLOAT:
            continue
        values = np.abs(numpy_helper.to_array(tensor))
        flushed += int(np.count_nonzero((values > 0) & (values < MIN_POSITIVE)))
        clamped += int(np.count_nonzero(np.isfinite(values) & (values > MAX_FINITE)))
    return flushed, clamped


def _batch_symbols(model: onnx.ModelProto) -> dict[str, object]:
    return {name: dims[0] if dims else None for name, dims in io_dims(model).items()}


def check_batch_kept(before: onnx.ModelProto, after: onnx.ModelProto) -> None:
    """Every input and output keeps its dim 0 (the same symbol, e.g. ``batch``, or the same
    size); a dim the source left unknown may gain a symbol from shape inference, not a size."""
    want, have = _batch_symbols(before), _batch_symbols(after)

    def kept(name: str) -> bool:
        return have.get(name) == want[name] or (want[name] is None and isinstance(have.get(name), str))

    changed = [f"{name}: {want[name]!r} → {have.get(name)!r}" for name in want if not kept(name)]
    if changed:
        raise SpecError(f"FP16 conversion changed the batch axis of {', '.join(changed)}; nothing was written")


def convert_to_fp16(
    model: onnx.ModelProto, spec: ModelSpec, fp16_io: bool = False, seeded: bool = False
) -> Fp16Conversion:
    """The FP16 graph of ``model`` (left untouched) with ``spec`` at FP16 tolerances (those
    of seeded weights when ``seeded``)."""
    spec.require_fp32()
    float16 = _converter()
    blocked = default_op_block_list()
    source = onnx.ModelProto()
    source.CopyFrom(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one warning per tensor with out-of-range values: counted per value below
        try:
            converted = float16.convert_float_to_float16(
                source,
                min_positive_val=MIN_POSITIVE,
                max_finite_val=MAX_FINITE,
                keep_io_types=not fp16_io,
                op_block_list=list(blocked),
            )
        except ValueError as exc:  # e.g. "The model is already converted to float16"
            raise SpecError(f"cannot convert {spec.name} to FP16: {str(exc).splitlines()[0]}") from None
    flushed, clamped = out_of_range_weights(model)
    check_batch_kept(model, converted)
    try:
        onnx.checker.check_model(converted)
    except onnx.checker.ValidationError as exc:
        raise SpecError(f"the FP16 graph of {spec.name} is not valid ONNX: {str(exc).splitlines()[0]}") from None
    return Fp16Conversion(converted, spec.at_fp16(seeded), fp16_io, blocked, flushed, clamped)


def stamp_fp16(
    conversion: Fp16Conversion, source_props: dict[str, str], source_name: str, source_sha256: str
) -> onnx.ModelProto:
    """The converted model with the source's metadata, its FP16 spec, the precision and where it came from."""
    model = conversion.model
    props = dict(source_props)
    props |= {
        SPEC_PROP: json.dumps(spec_to_dict(conversion.spec), sort_keys=True),
        "precision": Precision.FP16.value,
        "fp16_io": str(conversion.fp16_io),
        "fp16_op_block_list": ",".join(conversion.op_block_list),
        "source_onnx": source_name,
        "source_sha256": source_sha256,
    }
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, props)
    return model
