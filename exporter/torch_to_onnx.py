"""``onnx_from_torch``: torch module + spec → ONNX file whose symbolic axes are the spec's.

Uses torch's dynamo exporter (the default since torch 2.9) with ``dynamic_shapes`` derived
from the spec: the batch becomes ``Dim("batch")``; symbolic spatial dims become a multiple
of the model's size granularity (SCRFD: 32), which keeps the strided convs provably
aligned. The exporter's own symbol names are then renamed to the spec's everywhere in
the graph, and the result is checked: a batch axis that came out fixed is an error.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import onnx
import torch
from torch import nn

from facebatch.configs.spec import BATCH, HEIGHT, WIDTH, ModelSpec
from facebatch.core.errors import ExportError
from facebatch.core.interrupts import deferred
from facebatch.exporter.defaults import DEFAULT_OPSET, check_opset
from facebatch.verify.layout import axis_problems

MAX_SYMBOLIC_BATCH = 4096
MAX_SPATIAL_BLOCKS = 256  # spatial dims up to 256 × granularity


def dynamic_shapes_from_spec(spec: ModelSpec) -> tuple[dict[int, object], ...]:
    from torch.export import Dim

    granularity = spec.size_multiple
    shapes = []
    for tensor in spec.inputs:
        axes: dict[int, object] = {}
        for axis, symbol in tensor.symbolic_axes().items():
            if symbol == BATCH:
                axes[axis] = Dim(BATCH, min=1, max=MAX_SYMBOLIC_BATCH)
            else:
                axes[axis] = granularity * Dim(f"{symbol}_blocks", min=1, max=MAX_SPATIAL_BLOCKS)
        shapes.append(axes)
    return tuple(shapes)


def example_inputs(spec: ModelSpec, batch: int = 2) -> tuple[torch.Tensor, ...]:
    """Batch 2, not 1: torch.export specialises size-1 dims."""
    h, w = spec.input_size
    defaults = {BATCH: batch, HEIGHT: h, WIDTH: w}
    return tuple(torch.randn(t.concrete_shape(defaults)) for t in spec.inputs)


def name_axes_from_spec(model: onnx.ModelProto, spec: ModelSpec) -> onnx.ModelProto:
    """Rename the exporter's symbols to the spec's (on I/O and value_info alike)."""
    renames: dict[str, str] = {}
    graph_io = {v.name: v for v in list(model.graph.input) + list(model.graph.output)}
    for tensor in spec.inputs + spec.outputs:
        value = graph_io.get(tensor.name)
        if value is None:
            continue
        for want, dim in zip(tensor.dims, value.type.tensor_type.shape.dim, strict=False):
            if isinstance(want, str) and dim.dim_param and not dim.HasField("dim_value"):
                if renames.setdefault(dim.dim_param, want) != want:
                    raise ExportError(
                        f"the exporter used one symbol {dim.dim_param!r} for both {renames[dim.dim_param]!r} and {want!r}"
                    )
            elif isinstance(want, str) and not dim.dim_param and not dim.HasField("dim_value"):
                dim.dim_param = want  # unnamed dynamic dim
    for value in list(model.graph.input) + list(model.graph.output) + list(model.graph.value_info):
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param in renames:
                dim.dim_param = renames[dim.dim_param]
    return model


def prove_axes(model: onnx.ModelProto, spec: ModelSpec, stage: str) -> None:
    problems = axis_problems(model, spec)
    if problems:
        raise ExportError(f"after {stage}: " + "; ".join(problems))


def onnx_from_torch(model: nn.Module, spec: ModelSpec, path: Path, opset: int = DEFAULT_OPSET) -> Path:
    """Export ``model`` to ``path`` with the spec's names and symbolic axes, proven."""
    check_opset(opset)
    model = model.eval()
    captured = io.StringIO()
    # the exporter and onnxscript log opset conversion and torchvision notes: nothing a user acts on
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "onnxscript")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        # deferred: a signal during the trace ends the run after torch returns, never inside it (facebatch.core.interrupts)
        with (
            deferred(),
            warnings.catch_warnings(),
            contextlib.redirect_stdout(captured),
            contextlib.redirect_stderr(captured),
        ):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                model,
                example_inputs(spec),
                dynamo=True,
                opset_version=opset,
                input_names=spec.input_names,
                output_names=spec.output_names,
                dynamic_shapes=dynamic_shapes_from_spec(spec),
                optimize=True,
                verbose=False,
            )
            model_proto = program.model_proto
    except Exception as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"torch.onnx.export failed for {spec.name}: {detail}") from exc
    finally:
        for logger, level in zip(loggers, levels, strict=False):
            logger.setLevel(level)
    proto = name_axes_from_spec(model_proto, spec)
    prove_axes(proto, spec, "export")
    onnx.save(proto, str(path))
    return Path(path)
