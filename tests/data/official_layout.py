"""Recognition files in the official layout, made here from seeded models because no real
IResNet weights exist on this machine: what arcface_torch ``torch2onnx.py`` does (facts
§5.5) — TorchScript exporter, eval, opset 11, traced at batch 1, exporter-default names
(input ``input.1``, numeric output), no dynamic axes; the HEAD version then renames the
input's dim 0 to ``None``."""

from __future__ import annotations

import warnings
from pathlib import Path

import onnx
import torch
from torch import nn


def export_official_layout(model: nn.Module, path: Path, head_version: bool = False) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model.eval(),
            torch.randn(1, 3, 112, 112),
            str(path),
            dynamo=False,
            opset_version=11,
            keep_initializers_as_inputs=False,
            do_constant_folding=True,
            training=torch.onnx.TrainingMode.EVAL,
        )
    if head_version:
        proto = onnx.load(str(path))
        proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "None"
        onnx.save(proto, str(path))
    return Path(path)


def export_fixed_size_simplified(model: nn.Module, path: Path, size: int, simplify: bool = True) -> Path:
    """A third-party SCRFD file as the mmdet tools make one: the TorchScript exporter at batch 1
    and a fixed size, then onnxsim at that shape, which folds every Shape-derived value into a
    constant (Reshape to [1, -1, C], Resize to sizes [1, C, H, W])."""
    import onnxsim

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model.eval(),
            torch.randn(1, 3, size, size),
            str(path),
            dynamo=False,
            opset_version=11,
            do_constant_folding=True,
        )
    if not simplify:  # the reshapes stay computed from Shape: only the declared output dims pin the batch
        return Path(path)
    simplified, ok = onnxsim.simplify(onnx.load(str(path)))
    assert ok
    onnx.save(simplified, str(path))
    return Path(path)
