"""The layers after and between the convs: PRelu, Gemm/MatMul and the BatchNormalization
nodes the exporter could not fold, matched to the model's PReLU, Linear and BatchNorm
calls in forward order (``CallTrace``), shape-checked, and added to an ``Assignment``.

Used with ``onnx_weights.assign_convs`` for recognition graphs: IResNet keeps
each block's pre-conv BN, the tail BN and the BN1d after the fc as BatchNormalization
nodes; PReLU slopes arrive as [C,1,1]; the fc is a Gemm (transB=1) or, without bias, a MatMul
against the transposed weight.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from torch import nn

from facebatch.core.errors import WeightsError
from facebatch.core.onnx_graph import GraphView, attribute
from facebatch.exporter.weights.onnx_weights import Assignment, CallTrace

DENSE_OPS = ("Gemm", "MatMul")


@dataclass(frozen=True)
class GraphDense:
    """A Gemm or a MatMul with a constant weight, as ``weight [out, in]`` and optional bias."""

    node: onnx.NodeProto
    weight: np.ndarray
    bias: np.ndarray | None
    output: str  # the tensor after the bias (MatMul → Add) is applied

    def describe(self) -> str:
        return f"{self.node.op_type} {self.node.name or self.node.output[0]} weight {list(self.weight.shape)}"


def graph_dense(view: GraphView) -> list[GraphDense]:
    dense = []
    for node in view.nodes:
        if node.op_type not in DENSE_OPS:
            continue
        weight = view.const(node.input[1])
        if weight is None or weight.ndim != 2:
            continue  # an activation × activation product, not a layer
        bias, output = None, node.output[0]
        if node.op_type == "Gemm":
            if int(attribute(node, "transA", 0)):
                raise WeightsError(f"Gemm {node.name} transposes its input (transA=1); not a Linear layer")
            weight = weight if int(attribute(node, "transB", 0)) else weight.T
            scale = float(attribute(node, "alpha", 1.0))
            weight = weight * scale
            if len(node.input) > 2 and view.const(node.input[2]) is not None:
                bias = view.const(node.input[2]).reshape(-1) * float(attribute(node, "beta", 1.0))
        else:
            weight = weight.T  # MatMul(x, W^T)
            follower = view.only_consumer(output)
            if follower is not None and follower.op_type == "Add":
                constants = [view.const(n) for n in follower.input if view.const(n) is not None]
                if len(constants) == 1 and constants[0].size == weight.shape[0]:
                    bias, output = constants[0].reshape(-1), follower.output[0]
        dense.append(
            GraphDense(node, weight.astype(np.float32), None if bias is None else bias.astype(np.float32), output)
        )
    return dense


def _bn_node_values(view: GraphView, node: onnx.NodeProto, norm: nn.Module) -> dict[str, np.ndarray]:
    gamma, beta, mean, var = (view.const(n) for n in node.input[1:5])
    if any(v is None for v in (gamma, beta, mean, var)):
        raise WeightsError(f"BatchNormalization {node.name or node.output[0]} has non-constant parameters")
    eps = float(attribute(node, "epsilon", 1e-5))
    var = var + (eps - norm.eps)  # the same denominator under the model's own eps
    return {"weight": gamma, "bias": beta, "running_mean": mean, "running_var": var}


def _set_bn(out: Assignment, name: str, values: dict[str, np.ndarray], channels: int, source: str) -> None:
    for key, value in values.items():
        if np.asarray(value).size != channels:
            raise WeightsError(f"{source} has {np.asarray(value).size} channels where {name} has {channels}")
        out.set(f"{name}.{key}", np.asarray(value).reshape(channels), source)


def assign_dense(model: nn.Module, view: GraphView, trace: CallTrace, out: Assignment) -> set[str]:
    """Linear calls ↔ Gemm/MatMul nodes in order; a BN after a Linear is either a
    BatchNormalization node on its output or folded into it. Returns the BN nodes used."""
    modules = dict(model.named_modules())
    dense = graph_dense(view)
    if len(dense) != len(trace.linears):
        raise WeightsError(
            f"the graph has {len(dense)} Gemm/MatMul layers, the model calls {len(trace.linears)} Linear layers"
        )
    used: set[str] = set()
    for gd, name, norm_name in zip(dense, trace.linears, trace.linear_norms, strict=False):
        linear = modules[name]
        if tuple(linear.weight.shape) != gd.weight.shape:
            raise WeightsError(f"{gd.describe()} does not fit {name} (weight {list(linear.weight.shape)})")
        out.set(f"{name}.weight", gd.weight, gd.describe())
        bias = gd.bias if gd.bias is not None else np.zeros(gd.weight.shape[0], dtype=np.float32)
        consumer = view.only_consumer(gd.output)
        if norm_name is not None and consumer is not None and consumer.op_type == "BatchNormalization":
            norm = modules[norm_name]
            values = _bn_node_values(view, consumer, norm)
            if linear.bias is None:
                values["running_mean"] = values["running_mean"] - bias  # bias folded into the BN mean
            _set_bn(out, norm_name, values, norm.num_features, gd.describe())
            used.add(consumer.output[0])
        elif norm_name is not None:  # folded: the norm becomes the identity
            norm = modules[norm_name]
            channels = norm.num_features
            shift = bias if linear.bias is None else np.zeros(channels)
            identity = {
                "weight": np.ones(channels),
                "bias": shift,
                "running_mean": np.zeros(channels),
                "running_var": np.full(channels, 1.0 - norm.eps),
            }
            _set_bn(out, norm_name, identity, channels, gd.describe())
            if linear.bias is not None:
                out.set(f"{name}.bias", bias, gd.describe())
            continue
        if linear.bias is not None:
            out.set(f"{name}.bias", bias, gd.describe())
        elif norm_name is None and gd.bias is not None and np.any(gd.bias != 0):
            raise WeightsError(f"{gd.describe()} has a bias but {name} has none")
    return used


def assign_free_norms(model: nn.Module, view: GraphView, trace: CallTrace, out: Assignment, used: set[str]) -> None:
    """BN calls not right after a conv/linear ↔ BatchNormalization nodes not right after a
    Conv and not taken by a dense layer, in order."""
    modules = dict(model.named_modules())
    conv_outputs = {n.output[0] for n in view.nodes if n.op_type == "Conv"}
    nodes = [
        n
        for n in view.nodes
        if n.op_type == "BatchNormalization" and n.input[0] not in conv_outputs and n.output[0] not in used
    ]
    free = [name for name in trace.free_norms() if isinstance(modules[name], nn.modules.batchnorm._BatchNorm)]
    if len(nodes) != len(free):
        raise WeightsError(
            f"the graph has {len(nodes)} unfolded BatchNormalization nodes, the model calls {len(free)} BatchNorms "
            "that no conv or linear precedes"
        )
    for node, name in zip(nodes, free, strict=False):
        norm = modules[name]
        _set_bn(
            out,
            name,
            _bn_node_values(view, node, norm),
            norm.num_features,
            f"BatchNormalization {node.name or node.output[0]}",
        )


def assign_prelus(model: nn.Module, view: GraphView, trace: CallTrace, out: Assignment) -> None:
    modules = dict(model.named_modules())
    nodes = [n for n in view.nodes if n.op_type == "PRelu"]
    if len(nodes) != len(trace.prelus):
        raise WeightsError(f"the graph has {len(nodes)} PRelu nodes, the model calls {len(trace.prelus)} PReLUs")
    for node, name in zip(nodes, trace.prelus, strict=False):
        slope = view.const(node.input[1])
        if slope is None:
            raise WeightsError(f"PRelu {node.name or node.output[0]} has a slope that is not a constant")
        channels = modules[name].num_parameters
        if slope.size != channels:
            raise WeightsError(f"PRelu {node.name or node.output[0]} has {slope.size} slopes, {name} has {channels}")
        out.set(f"{name}.weight", slope.reshape(channels), f"PRelu {node.name or node.output[0]}")
