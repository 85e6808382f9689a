"""Seeded random weights for verification and benchmarks when no real weights are given.

Random weights alone give activations that grow or vanish layer by layer; trained
networks do not. So: He-scaled weights (LeCun for the named prediction layers), then every
BatchNorm's statistics measured on seeded noise (as training would have left them), so
each normalised activation is O(1).

A random network is still far less well-conditioned than a trained one (fp32 rounding
compounds layer by layer), which is why parity on seeded weights is judged against the
model's own fp32 error (``verify.torch_parity.intrinsic_fp32_error``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

FROZEN_SUFFIXES = ("integral.project", "running_mean", "running_var")


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
