"""Populate a PyTorch model from an ONNX graph by Conv topology, not by initializer names.

Exported graphs give folded weights numeric names and may share initializers between
nodes, so names prove nothing. Instead: the model's Conv2d modules in
forward-call order are matched one-to-one with the graph's Conv nodes in graph order,
every shape and attribute is checked, and the norm after each conv is recovered from
what the exporter left behind:

* folded BN (the conv has a bias, no norm node): BN ← (γ=1, β=bias, μ=0, σ²=1−ε), exact;
* a BatchNormalization node after the conv: its four tensors;
* GroupNorm as Reshape → InstanceNormalization → Reshape → Mul(γ) → Add(β), or a
  GroupNormalization node: γ and β.

Modules called more than once (SCRFD heads whose strides share weights) must receive the
same values every time; a disagreement is an error, not a silent overwrite.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
import torch
from torch import nn

from facebatch.core.errors import WeightsError
from facebatch.core.onnx_graph import GraphView, attribute

SAME_VALUE_ATOL = 1e-6


@dataclass(frozen=True)
class GraphConv:
    index: int
    node: onnx.NodeProto
    weight: np.ndarray
    bias: np.ndarray | None
    stride: tuple[int, ...]
    groups: int

    @property
    def signature(self) -> tuple:
        return (tuple(self.weight.shape), self.stride, self.groups)

    def describe(self) -> str:
        return f"Conv #{self.index} ({self.node.name or self.node.output[0]}) weight {list(self.weight.shape)} stride {list(self.stride)} group {self.groups}"


def graph_convs(view: GraphView) -> list[GraphConv]:
    convs = []
    for node in view.nodes:
        if node.op_type != "Conv":
            continue
        weight = view.const(node.input[1])
        if weight is None:
            raise WeightsError(
                f"Conv node {node.name or node.output[0]} has a weight that is not a constant; cannot import"
            )
        bias = view.const(node.input[2]) if len(node.input) > 2 else None
        stride = tuple(attribute(node, "strides", [1] * (weight.ndim - 2)))
        convs.append(
            GraphConv(len(convs), node, weight.astype(np.float32), bias, stride, int(attribute(node, "group", 1)))
        )
    return convs


NORM_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm)


@dataclass
class CallTrace:
    """What one forward pass called, in order. Shared modules appear once per call.

    ``conv_norms[i]`` / ``linear_norms[i]`` name the norm applied directly to the output of
    conv call ``i`` / linear call ``i`` (found by data flow, so naming conventions such as
    IResNet's ``conv1 → bn2`` need no rules), or None.
    """

    convs: list[str] = field(default_factory=list)
    conv_norms: list[str | None] = field(default_factory=list)
    linears: list[str] = field(default_factory=list)
    linear_norms: list[str | None] = field(default_factory=list)
    prelus: list[str] = field(default_factory=list)
    norms: list[str] = field(default_factory=list)

    def free_norms(self) -> list[str]:
        """Norm calls that follow neither a conv nor a linear (e.g. pre-activation BNs)."""
        attached = {n for n in self.conv_norms + self.linear_norms if n is not None}
        return [n for n in self.norms if n not in attached]


def trace_calls(model: nn.Module, example: torch.Tensor) -> CallTrace:
    names = {module: name for name, module in model.named_modules()}
    trace = CallTrace()
    producers: dict[int, tuple[str, int]] = {}  # id(output tensor) -> ("conv"|"linear", call index)
    alive: list[torch.Tensor] = []  # keep outputs alive so their ids stay unique during the pass

    def record(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        name = names[module]
        if isinstance(module, nn.Conv2d):
            producers[id(output)] = ("conv", len(trace.convs))
            trace.convs.append(name)
            trace.conv_norms.append(None)
        elif isinstance(module, nn.Linear):
            producers[id(output)] = ("linear", len(trace.linears))
            trace.linears.append(name)
            trace.linear_norms.append(None)
        elif isinstance(module, nn.PReLU):
            trace.prelus.append(name)
        else:
            trace.norms.append(name)
            kind, index = producers.get(id(inputs[0]), (None, -1))
            if kind == "conv":
                trace.conv_norms[index] = name
            elif kind == "linear":
                trace.linear_norms[index] = name
        alive.append(output)

    traced = (nn.Conv2d, nn.Linear, nn.PReLU) + NORM_TYPES
    hooks = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, traced)]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for hook in hooks:
            hook.remove()
    return trace


def module_signature(conv: nn.Conv2d) -> tuple:
    return (tuple(conv.weight.shape), tuple(conv.stride), conv.groups)


@dataclass
class Assignment:
    """Values gathered for the model's tensors, checked for consistency, then loaded once."""

    values: dict[str, np.ndarray] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)

    def set(self, name: str, value: np.ndarray, source: str) -> None:
        value = np.asarray(value, dtype=np.float32)
        if name in self.values:
            previous = self.values[name]
            if previous.shape != value.shape or not np.allclose(previous, value, atol=SAME_VALUE_ATOL, rtol=0):
                raise WeightsError(
                    f"{name} is used at several places in the model but the graph gives it different values "
                    f"({self.sources[name]} vs {source}); the graph does not fit this architecture"
                )
            return
        self.values[name] = value
        self.sources[name] = source

    def load_into(self, model: nn.Module, optional: tuple[str, ...] = ()) -> None:
        state = model.state_dict()
        missing = sorted(
            k
            for k in state
            if k not in self.values
            and not k.endswith("num_batches_tracked")
            and not any(k.endswith(o) for o in optional)
        )
        if missing:
            raise WeightsError(f"the graph left {len(missing)} model tensors unset: {', '.join(missing[:8])}")
        for name, value in self.values.items():
            target = state[name]
            if tuple(target.shape) != value.shape:
                value = value.reshape(tuple(target.shape))
            state[name] = torch.from_numpy(value.copy()).to(target.dtype)
        model.load_state_dict(state, strict=True)


def _walk_single(view: GraphView, tensor: str, through: tuple[str, ...], limit: int = 6) -> list[onnx.NodeProto]:
    chain = []
    for _ in range(limit):
        node = view.only_consumer(tensor)
        if node is None or node.op_type not in through:
            break
        chain.append(node)
        tensor = node.output[0]
    return chain


def _affine_param(view: GraphView, node: onnx.NodeProto, channels: int) -> np.ndarray | None:
    for name in node.input:
        value = view.const(name)
        if value is not None and value.size == channels:
            return value.reshape(channels)
    return None


def _set_norm(view: GraphView, gc: GraphConv, norm_name: str, norm: nn.Module, out: Assignment) -> None:
    channels = gc.weight.shape[0]
    src = gc.describe()
    consumer = view.only_consumer(gc.node.output[0])
    if isinstance(norm, nn.BatchNorm2d):
        if consumer is not None and consumer.op_type == "BatchNormalization":
            gamma, beta, mean, var = (view.const(n) for n in consumer.input[1:5])
            if any(v is None for v in (gamma, beta, mean, var)):
                raise WeightsError(f"BatchNormalization after {src} has non-constant parameters")
            eps = float(attribute(consumer, "epsilon", 1e-5))
            var = var + (eps - norm.eps)  # same denominator under the model's own eps
            if gc.bias is not None:
                mean = mean - gc.bias  # conv bias folded into the BN mean
        else:  # folded into the conv
            gamma, mean = np.ones(channels), np.zeros(channels)
            beta = gc.bias if gc.bias is not None else np.zeros(channels)
            var = np.full(channels, 1.0 - norm.eps)
        for key, value in (("weight", gamma), ("bias", beta), ("running_mean", mean), ("running_var", var)):
            out.set(f"{norm_name}.{key}", value, src)
        return
    # GroupNorm: the exporter cannot fold it; find its affine parameters downstream.
    if consumer is not None and consumer.op_type == "GroupNormalization":
        gamma, beta = _affine_param(view, consumer, channels), view.const(consumer.input[2])
        beta = beta.reshape(channels) if beta is not None and beta.size == channels else None
    else:
        chain = _walk_single(view, gc.node.output[0], ("Reshape", "InstanceNormalization", "Reshape", "Mul", "Add"))
        ops = [n.op_type for n in chain]
        if "InstanceNormalization" not in ops or "Mul" not in ops or "Add" not in ops:
            raise WeightsError(
                f"{src} should be followed by GroupNorm ({norm_name}) but the graph has {ops or 'nothing'}"
            )
        gamma = _affine_param(view, chain[ops.index("Mul", ops.index("InstanceNormalization"))], channels)
        beta = _affine_param(view, chain[ops.index("Add", ops.index("InstanceNormalization"))], channels)
    if gamma is None or beta is None:
        raise WeightsError(f"GroupNorm after {src}: cannot find its per-channel scale and shift")
    if gc.bias is not None and np.any(gc.bias != 0):
        raise WeightsError(f"{src} has a bias before GroupNorm {norm_name}; the checkpoint layout has none")
    out.set(f"{norm_name}.weight", gamma, src)
    out.set(f"{norm_name}.bias", beta, src)


def assign_convs(model: nn.Module, view: GraphView, convs: list[GraphConv], trace: CallTrace) -> Assignment:
    """Match graph convs to conv calls one-to-one and gather conv + norm values."""
    modules = dict(model.named_modules())
    if len(convs) != len(trace.convs):
        raise WeightsError(f"the graph has {len(convs)} Conv nodes, the model calls {len(trace.convs)} convs")
    out = Assignment()
    for gc, name, norm_name in zip(convs, trace.convs, trace.conv_norms, strict=False):
        conv = modules[name]
        assert isinstance(conv, nn.Conv2d)
        if gc.signature != module_signature(conv):
            raise WeightsError(
                f"{gc.describe()} does not fit {name} (weight {list(conv.weight.shape)} "
                f"stride {list(conv.stride)} group {conv.groups})"
            )
        out.set(f"{name}.weight", gc.weight, gc.describe())
        if norm_name is not None:
            _set_norm(view, gc, norm_name, modules[norm_name], out)
        elif conv.bias is not None:
            bias = gc.bias if gc.bias is not None else np.zeros(gc.weight.shape[0], dtype=np.float32)
            out.set(f"{name}.bias", bias, gc.describe())
        elif gc.bias is not None and np.any(gc.bias != 0):
            raise WeightsError(f"{gc.describe()} has a bias but {name} has neither bias nor norm")
    return out


def scalar_multiplier(view: GraphView, tensor: str) -> float | None:
    """The scalar a tensor is multiplied by right after it is produced (mmcv Scale), if any."""
    node = view.only_consumer(tensor)
    if node is None or node.op_type != "Mul":
        return None
    for name in node.input:
        value = view.const(name)
        if value is not None and value.size == 1:
            return float(value.reshape(()))
    return None
