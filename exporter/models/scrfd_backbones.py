"""SCRFD backbones with mmdet module names, so checkpoints load strictly.

Blocks first, then the backbone classes. Only inference matters here: no init schemes,
no frozen stages, no norm_eval.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from facebatch.core.errors import SpecError


# ---------------------------------------------------------------- MobileNetV1 blocks
def conv_bn(inp: int, oup: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(inp, oup, 3, stride, 1, bias=False), nn.BatchNorm2d(oup), nn.ReLU(inplace=True))


def conv_dw(inp: int, oup: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inp, inp, 3, stride, 1, groups=inp, bias=False),
        nn.BatchNorm2d(inp),
        nn.ReLU(inplace=True),
        nn.Conv2d(inp, oup, 1, 1, 0, bias=False),
        nn.BatchNorm2d(oup),
        nn.ReLU(inplace=True),
    )


class MobileNetV1(nn.Module):
    """insightface scrfd ``MobileNetV1``: stem (stride 2), then 4 stages of depthwise blocks."""

    def __init__(
        self,
        block_cfg: dict[str, Any],
        in_channels: int = 3,
        num_stages: int = 4,
        out_indices: tuple[int, ...] = (0, 1, 2, 3),
    ) -> None:
        super().__init__()
        planes = list(block_cfg["stage_planes"])
        blocks = list(block_cfg["stage_blocks"])
        if len(planes) != num_stages + 2 or len(blocks) != num_stages:
            raise SpecError(
                f"MobileNetV1 needs {num_stages + 2} stage_planes and {num_stages} stage_blocks, "
                f"got {len(planes)} and {len(blocks)}"
            )
        self.out_indices = tuple(out_indices)
        self.stem = nn.Sequential(conv_bn(in_channels, planes[0], 2), conv_dw(planes[0], planes[1], 1))
        self.stage_names: list[str] = []
        for i, num_blocks in enumerate(blocks):
            cin, cout = planes[i + 1], planes[i + 2]
            layer = nn.Sequential(conv_dw(cin, cout, 2), *[conv_dw(cout, cout, 1) for _ in range(num_blocks - 1)])
            name = f"layer{i + 1}"
            self.add_module(name, layer)
            self.stage_names.append(name)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = self.stem(x)
        outs = []
        for i, name in enumerate(self.stage_names):
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)


# ---------------------------------------------------------------- ResNetV1e blocks
class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        # mmdet runs the shortcut after the main branch; exported graphs keep that order
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """mmdet Bottleneck, style='pytorch': the stride sits on the 3×3 conv."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, 1, 0, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, 1, 0, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


BLOCKS: dict[str, type[BasicBlock] | type[Bottleneck]] = {"BasicBlock": BasicBlock, "Bottleneck": Bottleneck}

# mmdet ResNet.arch_settings, for configs that give a standard depth instead of block_cfg
ARCH_SETTINGS: dict[int, tuple[str, tuple[int, ...]]] = {
    18: ("BasicBlock", (2, 2, 2, 2)),
    34: ("BasicBlock", (3, 4, 6, 3)),
    50: ("Bottleneck", (3, 4, 6, 3)),
    101: ("Bottleneck", (3, 4, 23, 3)),
    152: ("Bottleneck", (3, 8, 36, 3)),
}


def res_layer(
    block: type[BasicBlock] | type[Bottleneck], inplanes: int, planes: int, blocks: int, stride: int
) -> nn.Sequential:
    """mmdet ResLayer with avg_down=True: the shortcut is AvgPool (kernel=stride) → 1×1 conv → BN."""
    downsample = None
    if stride != 1 or inplanes != planes * block.expansion:
        downsample = nn.Sequential(
            nn.AvgPool2d(kernel_size=stride, stride=stride, ceil_mode=True, count_include_pad=False),
            nn.Conv2d(inplanes, planes * block.expansion, 1, 1, bias=False),
            nn.BatchNorm2d(planes * block.expansion),
        )
    layers = [block(inplanes, planes, stride, downsample)]
    layers += [block(planes * block.expansion, planes) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class ResNetV1e(nn.Module):
    """SCRFD's ResNetV1e: deep stem, 2×2 max pool (no_pool33), avg-down shortcuts."""

    def __init__(
        self,
        depth: int = 0,
        block_cfg: dict[str, Any] | None = None,
        base_channels: int = 64,
        stem_channels: int | None = None,
        in_channels: int = 3,
        num_stages: int = 4,
        strides: tuple[int, ...] = (1, 2, 2, 2),
        out_indices: tuple[int, ...] = (0, 1, 2, 3),
        norm_cfg: dict[str, Any] | None = None,
        style: str = "pytorch",
    ) -> None:
        super().__init__()
        if norm_cfg is not None and norm_cfg.get("type", "BN") not in ("BN", "SyncBN"):
            raise SpecError(f"ResNetV1e norm_cfg type {norm_cfg.get('type')!r} is not supported; SCRFD uses BN")
        if style != "pytorch":
            raise SpecError(f"ResNetV1e style {style!r} is not supported; SCRFD uses style='pytorch'")
        if block_cfg is not None:
            block_name = block_cfg["block"]
            stage_blocks = tuple(block_cfg["stage_blocks"])
            stage_planes = list(block_cfg.get("stage_planes") or [base_channels * 2**i for i in range(num_stages)])
        elif depth in ARCH_SETTINGS:
            block_name, stage_blocks = ARCH_SETTINGS[depth]
            stage_planes = [base_channels * 2**i for i in range(num_stages)]
        else:
            raise SpecError(f"ResNetV1e depth {depth} has no preset; give block_cfg or one of {sorted(ARCH_SETTINGS)}")
        if block_name not in BLOCKS:
            raise SpecError(f"unknown ResNet block {block_name!r}; known: {', '.join(BLOCKS)}")
        block = BLOCKS[block_name]
        stem = stem_channels or base_channels
        self.out_indices = tuple(out_indices)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, stem // 2, 3, 2, 1, bias=False),
            nn.BatchNorm2d(stem // 2),
            nn.ReLU(inplace=True),
            nn.Conv2d(stem // 2, stem // 2, 3, 1, 1, bias=False),
            nn.BatchNorm2d(stem // 2),
            nn.ReLU(inplace=True),
            nn.Conv2d(stem // 2, stem, 3, 1, 1, bias=False),
            nn.BatchNorm2d(stem),
            nn.ReLU(inplace=True),
        )
        self.maxpool = nn.MaxPool2d(kernel_size=2, stride=2, padding=0)
        inplanes = stem
        self.stage_names = []
        for i in range(num_stages):
            layer = res_layer(block, inplanes, stage_planes[i], stage_blocks[i], strides[i])
            inplanes = stage_planes[i] * block.expansion
            name = f"layer{i + 1}"
            self.add_module(name, layer)
            self.stage_names.append(name)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = self.maxpool(self.stem(x))
        outs = []
        for i, name in enumerate(self.stage_names):
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)
