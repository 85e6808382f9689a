"""Seeded random weights for verification and benchmarks when no real weights are given.

Random weights alone give activations that grow or vanish layer by layer; trained
networks do not. So: He-scaled weights (LeCun for the named prediction layers), then every
BatchNorm's statistics measured on seeded noise (as training would have left them), so
each normalised activation is O(1).

A random network is still far less well-conditioned than a trained one (fp32 rounding
compounds layer by layer), which is why parity on seeded weights is judged against the
model's own fp32 error: ``seeded_parity_gate`` returns that gate as a value, and the export
and verify's torch reference both apply it.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from facebatch.configs.spec import ModelSpec
from facebatch.core.progress import step, warn

FROZEN_SUFFIXES = ("integral.project", "running_mean", "running_var")
CONDITIONING_FRAMES = 4
SEEDED_MARGIN = 4.0  # seeded weights: parity gate = max(spec atol, margin × the model's own fp32 error)


def seeded_weights(
    model: nn.Module,
    calibration_shape: Sequence[int],
    seed: int = 0,
    lecun_prefixes: tuple[str, ...] = (),
) -> nn.Module:
    """Deterministic weights for ``model``; BN statistics calibrated on a randn batch of
    ``calibration_shape``. Returns the model in eval mode."""
    generator = torch.Generator().manual_seed(seed)
    prelu_slopes = {f"{name}.weight" for name, m in model.named_modules() if isinstance(m, nn.PReLU)}
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not tensor.is_floating_point() or name.endswith(FROZEN_SUFFIXES):
                continue
            if name in prelu_slopes:  # trained PReLU slopes sit around 0.25
                tensor.copy_(0.25 + 0.05 * torch.randn(tensor.shape, generator=generator))
            elif name.endswith(".bias"):
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.05)
            elif tensor.dim() >= 2:
                gain = 1.0 if name.startswith(lecun_prefixes) else 2.0
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * (gain / tensor[0].numel()) ** 0.5)
            else:  # norm weights, scales
                tensor.copy_(1.0 + 0.1 * torch.randn(tensor.shape, generator=generator))
        norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
        model.eval()
        for bn in norms:
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average over the calibration pass
            bn.train()
        model(torch.randn(*calibration_shape, generator=generator))
        for bn in norms:
            bn.momentum = 0.1
            bn.num_batches_tracked.zero_()
    return model.eval()


@dataclass(frozen=True)
class ParityGate:
    """The atol that loosens a seeded model's parity, and why: each output is held to the larger of its
    spec atol and this one (``verify.parity.compare_outputs``)."""

    atol: float
    spec_atol: float
    own_error: float  # the torch model's own fp32-vs-fp64 error on the proof frames

    @property
    def note(self) -> str:
        return (
            f"seeded weights: parity gate {self.atol:.3g} = max(spec atol {self.spec_atol:g}, "
            f"{SEEDED_MARGIN:g} x the torch model's own fp32-vs-fp64 error {self.own_error:.3g}); "
            "real weights are held to the spec atol"
        )


def intrinsic_fp32_error(model: nn.Module, frames: np.ndarray) -> float:
    """How far the torch model's own fp32 outputs are from its fp64 outputs on ``frames``:
    the precision any fp32 runtime can be expected to reproduce it to."""
    reference = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        fp32 = model(torch.from_numpy(np.ascontiguousarray(frames)))
        fp64 = reference(torch.from_numpy(np.ascontiguousarray(frames)).double())
    fp32 = fp32 if isinstance(fp32, (tuple, list)) else (fp32,)
    fp64 = fp64 if isinstance(fp64, (tuple, list)) else (fp64,)
    return max(float((a.double() - b).abs().max()) for a, b in zip(fp32, fp64, strict=False))


def seeded_parity_gate(model: nn.Module, spec: ModelSpec, frames: np.ndarray) -> ParityGate:
    """A random net loses more fp32 precision than a trained one, so its parity gate is
    max(spec atol, margin × the torch model's own fp32-vs-fp64 error); the warning says so."""
    with step("measure the seeded model's own fp32 error (fp32 vs fp64 torch)"):
        own_error = intrinsic_fp32_error(model, frames[:CONDITIONING_FRAMES])
    spec_atol = min(t.atol for t in spec.outputs)  # each output is then held to max(its own atol, the gate)
    gate = ParityGate(max(spec_atol, SEEDED_MARGIN * own_error), spec_atol, own_error)
    warn(gate.note)
    return gate
