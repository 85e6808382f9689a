"""Torch model vs its exported ONNX on onnxruntime CPU, per batch size, on distinct frames."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import copy

import numpy as np
import torch
from torch import nn

from facebatch.configs.spec import ModelSpec
from facebatch.engines.onnxruntime_runner import OnnxRuntimeRunner
from facebatch.errors import SpecError
from facebatch.verify.parity import ParityReport, compare_outputs


def torch_outputs(model: nn.Module, batch: np.ndarray, names: Sequence[str]) -> dict[str, np.ndarray]:
    with torch.no_grad():
        outs = model(torch.from_numpy(np.ascontiguousarray(batch)))
    outs = outs if isinstance(outs, (tuple, list)) else (outs,)
    return {name: t.numpy() for name, t in zip(names, outs)}


def intrinsic_fp32_error(model: nn.Module, frames: np.ndarray) -> float:
    """How far the torch model's own fp32 outputs are from its fp64 outputs on ``frames``:
    the precision any fp32 runtime can be expected to reproduce it to."""
    reference = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        fp32 = model(torch.from_numpy(np.ascontiguousarray(frames)))
        fp64 = reference(torch.from_numpy(np.ascontiguousarray(frames)).double())
    fp32 = fp32 if isinstance(fp32, (tuple, list)) else (fp32,)
    fp64 = fp64 if isinstance(fp64, (tuple, list)) else (fp64,)
    return max(float((a.double() - b).abs().max()) for a, b in zip(fp32, fp64))


def torch_vs_onnx(
    model: nn.Module,
    onnx_path: Path,
    spec: ModelSpec,
    frames: np.ndarray,
    batch_sizes: Sequence[int],
    atol: float | None = None,
) -> list[ParityReport]:
    """One report per batch size N, on the first N of ``frames`` (all distinct).
    ``atol`` overrides the spec's per-output tolerance (seeded weights only)."""
    if max(batch_sizes) > len(frames):
        raise SpecError(f"{len(frames)} frames cannot fill batch size {max(batch_sizes)}")
    reports = []
    with OnnxRuntimeRunner(onnx_path) as runner:
        for n in batch_sizes:
            batch = frames[:n]
            ort_out = runner.infer({spec.input.name: batch})
            reports.append(compare_outputs(f"batch {n}", ort_out, torch_outputs(model, batch, spec.output_names), spec.outputs, atol))
    return reports
