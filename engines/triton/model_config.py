"""Triton model configurations as values, written as ``config.pbtxt`` text.

The text follows Triton's ``ModelConfig`` protobuf schema (model_config.proto); the tests
parse every file we write with tritonclient's ``model_config_pb2``, so a field that Triton
would not accept fails there, not on a user's server. Writing plain text keeps the writer
free of tritonclient (``facebatch triton`` runs where no client is installed).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from facebatch.core.errors import SpecError

# numpy dtype → Triton data type; object arrays hold bytes (TYPE_STRING, "BYTES" on the wire)
TRITON_TYPES = {
    np.dtype(np.float32): "TYPE_FP32",
    np.dtype(np.float16): "TYPE_FP16",
    np.dtype(np.float64): "TYPE_FP64",
    np.dtype(np.int64): "TYPE_INT64",
    np.dtype(np.int32): "TYPE_INT32",
    np.dtype(np.int8): "TYPE_INT8",
    np.dtype(np.uint8): "TYPE_UINT8",
    np.dtype(np.bool_): "TYPE_BOOL",
    np.dtype(object): "TYPE_STRING",
}
KINDS = {"cpu": "KIND_CPU", "gpu": "KIND_GPU"}


def triton_type(dtype: np.dtype) -> str:
    try:
        return TRITON_TYPES[np.dtype(dtype)]
    except KeyError:
        raise SpecError(f"Triton has no tensor type for numpy {np.dtype(dtype)}") from None


@dataclass(frozen=True)
class TritonTensor:
    """One input or output as Triton sees it: dims *without* the batch axis (-1: variable);
    ``reshape``: the shape the model itself sees, when it differs (a scalar per item: ``()``)."""

    name: str
    dtype: np.dtype
    dims: tuple[int, ...]
    reshape: tuple[int, ...] | None = None

    def to_pbtxt(self) -> str:
        dims = ", ".join(str(d) for d in self.dims)
        text = f"{{ name: {json.dumps(self.name)} data_type: {triton_type(self.dtype)} dims: [ {dims} ]"
        if self.reshape is not None:
            text += f" reshape: {{ shape: [ {', '.join(str(d) for d in self.reshape)} ] }}"
        return text + " }"


@dataclass(frozen=True)
class DynamicBatching:
    """The batcher, and its queue's bounds: a request that finds ``max_queue_size`` requests waiting, or
    waits longer than ``queue_timeout_us``, is rejected at once with an error (0: no bound), so that an
    overloaded server answers excess requests quickly instead of holding every client."""

    preferred_batch_sizes: tuple[int, ...]
    max_queue_delay_us: int
    max_queue_size: int = 0
    queue_timeout_us: int = 0

    def to_pbtxt(self) -> str:
        preferred = ", ".join(str(n) for n in self.preferred_batch_sizes)
        lines = [
            "dynamic_batching {",
            f"  preferred_batch_size: [ {preferred} ]",
            f"  max_queue_delay_microseconds: {self.max_queue_delay_us}",
        ]
        if self.max_queue_size or self.queue_timeout_us:
            policy = "timeout_action: REJECT"
            if self.queue_timeout_us:
                policy += f" default_timeout_microseconds: {self.queue_timeout_us}"
            if self.max_queue_size:
                policy += f" max_queue_size: {self.max_queue_size}"
            lines.append(f"  default_queue_policy {{ {policy} }}")
        return "\n".join([*lines, "}"])


@dataclass(frozen=True)
class ModelConfig:
    """What one ``config.pbtxt`` says. ``platform`` (onnxruntime_onnx, tensorrt_plan) or
    ``backend`` (python) picks the runtime; ``parameters`` reach a python model's
    ``initialize`` through ``args["model_config"]``."""

    name: str
    max_batch_size: int
    inputs: tuple[TritonTensor, ...]
    outputs: tuple[TritonTensor, ...]
    platform: str = ""
    backend: str = ""
    dynamic_batching: DynamicBatching | None = None
    instance_kind: str = "cpu"
    instance_count: int = 1
    parameters: dict[str, str] = field(default_factory=dict)
    comment: str = ""  # one more comment line at the top (the weights' licence)

    def __post_init__(self) -> None:
        if bool(self.platform) == bool(self.backend):
            raise SpecError(f"model {self.name}: give exactly one of platform and backend")
        if self.instance_kind not in KINDS:
            raise SpecError(
                f"model {self.name}: instance kind must be one of {sorted(KINDS)}, got {self.instance_kind!r}"
            )
        if self.instance_count < 1:
            raise SpecError(
                f"model {self.name}: instances must be at least 1, got {self.instance_count}", field="instances"
            )
        if self.max_batch_size < 0:
            raise SpecError(f"model {self.name}: the max batch size cannot be negative, got {self.max_batch_size}")

    def to_pbtxt(self) -> str:
        lines = [
            "# written by facebatch; Triton's ModelConfig schema (model_config.proto)",
            *([f"# {' '.join(self.comment.split())}"] if self.comment else []),
            f"name: {json.dumps(self.name)}",
        ]
        lines.append(
            f"platform: {json.dumps(self.platform)}" if self.platform else f"backend: {json.dumps(self.backend)}"
        )
        lines.append(f"max_batch_size: {self.max_batch_size}")
        lines.append("input [\n" + ",\n".join(f"  {t.to_pbtxt()}" for t in self.inputs) + "\n]")
        lines.append("output [\n" + ",\n".join(f"  {t.to_pbtxt()}" for t in self.outputs) + "\n]")
        if self.dynamic_batching is not None:
            lines.append(self.dynamic_batching.to_pbtxt())
        lines.append(f"instance_group [ {{ count: {self.instance_count} kind: {KINDS[self.instance_kind]} }} ]")
        for key, value in self.parameters.items():
            lines.append(f"parameters {{ key: {json.dumps(key)} value: {{ string_value: {json.dumps(value)} }} }}")
        return "\n".join(lines) + "\n"


def preferred_batch_sizes(opt: int, max_batch: int) -> tuple[int, ...]:
    """The profile's opt and max, capped at the served max (Triton refuses a preferred size
    above ``max_batch_size``)."""
    return tuple(sorted({min(opt, max_batch), max_batch}))
