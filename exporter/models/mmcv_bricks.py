"""mmcv's building blocks with mmcv's module names (so SCRFD checkpoints load strictly):
``ConvModule``, its depthwise-separable pair, ``Scale`` and ``Integral``, and the norm layer
an mmdet ``norm_cfg`` names."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from facebatch.core.errors import SpecError


def norm_layer(norm_cfg: dict[str, Any] | None, channels: int) -> tuple[str, nn.Module] | None:
    """mmcv build_norm_layer naming: BN -> 'bn', GN -> 'gn'."""
    if not norm_cfg:
        return None
    kind = norm_cfg.get("type")
    if kind in ("BN", "SyncBN"):
        return "bn", nn.BatchNorm2d(channels)
    if kind == "GN":
        groups = int(norm_cfg["num_groups"])
        if channels % groups:
            raise SpecError(f"GroupNorm with {groups} groups cannot normalise {channels} channels")
        return "gn", nn.GroupNorm(groups, channels, eps=1e-5)
    raise SpecError(f"norm type {kind!r} is not supported; SCRFD uses BN or GN")


class ConvModule(nn.Module):
    """mmcv ConvModule: conv (bias only without norm) → norm → ReLU (when act is on)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        groups: int = 1,
        norm_cfg: dict[str, Any] | None = None,
        activate: bool = True,
    ) -> None:
        super().__init__()
        norm = norm_layer(norm_cfg, out_channels)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=norm is None)
        self.norm_name = norm[0] if norm else None
        if norm:
            self.add_module(norm[0], norm[1])
        self.activate = nn.ReLU(inplace=True) if activate else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.norm_name:
            x = getattr(self, self.norm_name)(x)
        return self.activate(x) if self.activate is not None else x


class DepthwiseSeparableConvModule(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, norm_cfg: dict[str, Any] | None) -> None:
        super().__init__()
        self.depthwise_conv = ConvModule(in_channels, in_channels, 3, 1, 1, groups=in_channels, norm_cfg=norm_cfg)
        self.pointwise_conv = ConvModule(in_channels, out_channels, 1, norm_cfg=norm_cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise_conv(self.depthwise_conv(x))


class Scale(nn.Module):
    """mmcv Scale: one learnable 0-dim factor."""

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(scale, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


class Integral(nn.Module):
    """Kept only for its checkpoint buffer ``project``; DFL is off in every SCRFD release."""

    def __init__(self, reg_max: int = 8) -> None:
        super().__init__()
        self.register_buffer("project", torch.linspace(0, reg_max, reg_max + 1))
