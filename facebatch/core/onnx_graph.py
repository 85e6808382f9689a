"""ONNX graph helpers shared by every package: loading, I/O dims, attributes, constants,
shape inference and a read-only view of a graph.

This module imports nothing else of facebatch (the import-direction test checks it), so
configs, engines, verify and exporter can all use it. Errors are raised with the caller's
error class, so each caller keeps saying what the file was for.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from facebatch.core.filetypes import file_kind

# the operators that carry a network's arithmetic (counted by the FLOPs, chosen among by mixed INT8)
COMPUTE_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")

DimValue = int | str | None  # a fixed size, a symbol, or unknown


def load_onnx(path: Path, role: str, error: type[Exception]) -> onnx.ModelProto:
    """Read an ONNX file or fail in one line: ``role`` says what the file was for ("weights
    file", "model file"), ``error`` is the caller's error class."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{role} {path} does not exist")
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # protobuf DecodeError and friends
        kind = file_kind(path)
        if kind is not None and not kind.startswith("an ONNX"):
            raise error(f"{path} is not an ONNX model (it is {kind}); pass the .onnx file") from exc
        raise error(f"{path} is not a readable ONNX file ({type(exc).__name__}); is it truncated?") from exc
    if not model.graph.node:
        raise error(f"{path} holds no graph nodes; is it truncated or not an ONNX model?")
    return model


def value_dims(value: onnx.ValueInfoProto) -> list[DimValue]:
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in value.type.tensor_type.shape.dim]


def io_dims(model: onnx.ModelProto) -> dict[str, list[DimValue]]:
    """Graph inputs (minus initializers) and outputs → dims (int, symbol, or None if unnamed)."""
    initializers = {i.name for i in model.graph.initializer}
    return {
        value.name: value_dims(value)
        for value in list(model.graph.input) + list(model.graph.output)
        if value.name not in initializers
    }


def graph_inputs(model: onnx.ModelProto) -> dict[str, list[DimValue]]:
    """The inputs a caller feeds: graph inputs that are neither initializers nor outputs."""
    outputs = {o.name for o in model.graph.output}
    return {name: dims for name, dims in io_dims(model).items() if name not in outputs}


def graph_input(model: onnx.ModelProto, error: type[Exception]) -> tuple[str, list[DimValue]]:
    """The one input of a single-input graph (detectors and embedders have one)."""
    inputs = graph_inputs(model)
    if len(inputs) != 1:
        raise error(f"expected one graph input, found {len(inputs)}: {', '.join(inputs)}")
    return next(iter(inputs.items()))


def inferred_shapes(model: onnx.ModelProto) -> dict[str, list[DimValue]]:
    """Every tensor's dims as onnx shape inference (with data propagation) sees them; a graph
    inference cannot follow gives what its declarations say."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception:  # inference is a help, not a requirement
        inferred = model
    values = list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)
    return {v.name: value_dims(v) for v in values if v.type.tensor_type.HasField("shape")}


def attribute(node: onnx.NodeProto, name: str, default: Any) -> Any:
    for attr in node.attribute:
        if attr.name == name:
            return onnx.helper.get_attribute_value(attr)
    return default


def node_label(node: onnx.NodeProto) -> str:
    """How reports name a node: its name, else its first output."""
    return node.name or node.output[0]


class GraphView:
    """Constants (initializers, Constant nodes, through Identity) and producer/consumer maps."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        self.nodes = list(model.graph.node)
        self.constants: dict[str, np.ndarray] = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
        self.consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
        self.producers: dict[str, onnx.NodeProto] = {}
        for node in self.nodes:
            if node.op_type == "Constant":
                for attr in node.attribute:
                    if attr.name == "value":
                        self.constants[node.output[0]] = numpy_helper.to_array(attr.t)
            elif node.op_type == "Identity" and node.input[0] in self.constants:
                self.constants[node.output[0]] = self.constants[node.input[0]]
            for name in node.input:
                self.consumers[name].append(node)
            for name in node.output:
                self.producers[name] = node
        self.outputs = {o.name for o in model.graph.output}

    def const(self, name: str) -> np.ndarray | None:
        return self.constants.get(name) if name else None

    def only_consumer(self, tensor: str) -> onnx.NodeProto | None:
        users = self.consumers.get(tensor, [])
        return users[0] if len(users) == 1 and tensor not in self.outputs else None

    def count(self, op_type: str) -> int:
        return sum(n.op_type == op_type for n in self.nodes)
