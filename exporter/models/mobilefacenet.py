"""MobileFaceNet ``mbf`` (arcface_torch ``backbones/mobilefacenet.py``) with the
original module names, so an arcface_torch ``backbone.pth`` loads with ``strict=True``."""

from __future__ import annotations

import torch
from torch import nn

from facebatch.configs.arcface import EMBEDDING_SIZE, MobileFaceNetConfig
from facebatch.core.errors import SpecError


class ConvBlock(nn.Module):
    """Conv → BN → PReLU."""

    def __init__(
        self, in_c: int, out_c: int, kernel: int = 1, stride: int = 1, padding: int = 0, groups: int = 1
    ) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(in_c, out_c, kernel, stride, padding, groups=groups, bias=False),
            nn.BatchNorm2d(out_c),
            nn.PReLU(out_c),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class LinearBlock(nn.Module):
    """Conv → BN, no activation."""

    def __init__(
        self, in_c: int, out_c: int, kernel: int = 1, stride: int = 1, padding: int = 0, groups: int = 1
    ) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(in_c, out_c, kernel, stride, padding, groups=groups, bias=False),
            nn.BatchNorm2d(out_c),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class DepthWise(nn.Module):
    """1×1 expand → k×k depthwise (stride) → 1×1 project, plus the input when residual."""

    def __init__(
        self, in_c: int, out_c: int, residual: bool, kernel: int, stride: int, padding: int, groups: int
    ) -> None:
        super().__init__()
        self.residual = residual
        self.layers = nn.Sequential(
            ConvBlock(in_c, groups),
            ConvBlock(groups, groups, kernel, stride, padding, groups=groups),
            LinearBlock(groups, out_c),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(x)
        return x + out if self.residual else out


class Residual(nn.Module):
    def __init__(self, channels: int, num_block: int, groups: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(*[DepthWise(channels, channels, True, 3, 1, 1, groups) for _ in range(num_block)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class GDC(nn.Module):
    """Global depthwise 7×7 → flatten(1) → Linear (no bias) → BatchNorm1d."""

    def __init__(self, embedding_size: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            LinearBlock(512, 512, kernel=7, stride=1, padding=0, groups=512),
            nn.Flatten(),
            nn.Linear(512, embedding_size, bias=False),
            nn.BatchNorm1d(embedding_size),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class MobileFaceNet(nn.Module):
    def __init__(
        self, num_features: int = EMBEDDING_SIZE, blocks: tuple[int, ...] = (1, 4, 6, 2), scale: int = 2
    ) -> None:
        super().__init__()
        if blocks[0] != 1:
            raise SpecError(
                f"MobileFaceNet blocks {tuple(blocks)}: only blocks[0] == 1 (mbf) is reproduced, not mbf_large; use arcface_mbf"
            )
        self.embedding_size = num_features
        w = 64 * scale  # 128 for mbf
        self.layers = nn.ModuleList(
            [
                ConvBlock(3, w, kernel=3, stride=2, padding=1),
                ConvBlock(w, w, kernel=3, stride=1, padding=1, groups=64),
                DepthWise(w, w, False, 3, 2, 1, groups=128),
                Residual(w, blocks[1], groups=128),
                DepthWise(w, 2 * w, False, 3, 2, 1, groups=256),
                Residual(2 * w, blocks[2], groups=256),
                DepthWise(2 * w, 2 * w, False, 3, 2, 1, groups=512),
                Residual(2 * w, blocks[3], groups=256),
            ]
        )
        self.conv_sep = ConvBlock(2 * w, 512, kernel=1)
        self.features = GDC(num_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return self.features(self.conv_sep(x))


def mobilefacenet(config: MobileFaceNetConfig, num_features: int = EMBEDDING_SIZE) -> MobileFaceNet:
    return MobileFaceNet(num_features=num_features, blocks=config.blocks, scale=config.scale)
