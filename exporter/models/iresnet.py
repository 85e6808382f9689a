"""IResNet (arcface_torch ``backbones/iresnet.py``) with the original module
names, so an arcface_torch ``backbone.pth`` loads with ``strict=True``.

Every stage has stride 2 (112 → 56 → 28 → 14 → 7); blocks are pre-activation style
(BN → conv → BN → PReLU → conv(stride) → BN, plus the shortcut) with no activation after
the add. The tail keeps the batch: ``flatten(1)`` → Linear → BatchNorm1d.
"""

from __future__ import annotations

import torch
from torch import nn

from facebatch.configs.arcface import EMBEDDING_SIZE, IResNetConfig

BN_EPS = 1e-5
PLANES = (64, 128, 256, 512)
FINAL_GRID = 7  # 112 / 2**4


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


class IBasicBlock(nn.Module):
    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes, eps=BN_EPS)
        self.conv1 = conv3x3(inplanes, planes)
        self.bn2 = nn.BatchNorm2d(planes, eps=BN_EPS)
        self.prelu = nn.PReLU(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn3 = nn.BatchNorm2d(planes, eps=BN_EPS)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        # The shortcut runs after the main branch, as in the original (and so in exported graph order).
        identity = self.downsample(x) if self.downsample is not None else x
        return out + identity


class IResNet(nn.Module):
    def __init__(self, layers: tuple[int, ...], num_features: int = EMBEDDING_SIZE, dropout: float = 0.0) -> None:
        super().__init__()
        self.embedding_size = num_features
        self.inplanes = PLANES[0]
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes, eps=BN_EPS)
        self.prelu = nn.PReLU(self.inplanes)
        self.layer1 = self._make_layer(PLANES[0], layers[0])
        self.layer2 = self._make_layer(PLANES[1], layers[1])
        self.layer3 = self._make_layer(PLANES[2], layers[2])
        self.layer4 = self._make_layer(PLANES[3], layers[3])
        self.bn2 = nn.BatchNorm2d(PLANES[3], eps=BN_EPS)
        self.dropout = nn.Dropout(p=dropout, inplace=True)
        self.fc = nn.Linear(PLANES[3] * FINAL_GRID * FINAL_GRID, num_features)
        self.features = nn.BatchNorm1d(num_features, eps=BN_EPS)
        nn.init.constant_(self.features.weight, 1.0)
        self.features.weight.requires_grad = False

    def _make_layer(self, planes: int, blocks: int) -> nn.Sequential:
        downsample = nn.Sequential(
            nn.Conv2d(self.inplanes, planes, kernel_size=1, stride=2, bias=False),
            nn.BatchNorm2d(planes, eps=BN_EPS),
        )
        layers = [IBasicBlock(self.inplanes, planes, 2, downsample)]
        self.inplanes = planes
        layers += [IBasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.dropout(torch.flatten(self.bn2(x), 1))  # flatten(1) keeps the batch axis
        return self.features(self.fc(x))


def iresnet(config: IResNetConfig, num_features: int = EMBEDDING_SIZE) -> IResNet:
    return IResNet(config.layers, num_features=num_features)
