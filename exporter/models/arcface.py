"""ArcFace backbones by arcface_torch name: ``build_arcface("r50")`` → IResNet-50."""

from __future__ import annotations

from torch import nn

from facebatch.configs.arcface import (
    ARCFACE_CONFIGS,
    ARCFACE_INPUT_SIZE,
    EMBEDDING_SIZE,
    IResNetConfig,
    arcface_network,
)
from facebatch.exporter.models.iresnet import IResNet, iresnet
from facebatch.exporter.models.mobilefacenet import MobileFaceNet, mobilefacenet
from facebatch.exporter.weights.seeded import seeded_weights

ArcFaceBackbone = IResNet | MobileFaceNet
CALIBRATION_FRAMES = 8


def build_arcface(network: str, num_features: int = EMBEDDING_SIZE) -> ArcFaceBackbone:
    """``r18`` … ``r200``, ``mbf`` (also with the ``arcface_`` prefix), in eval mode."""
    config = ARCFACE_CONFIGS[arcface_network(network)]
    if isinstance(config, IResNetConfig):
        return iresnet(config, num_features).eval()
    return mobilefacenet(config, num_features).eval()


def seeded_arcface(model: nn.Module, seed: int = 0) -> nn.Module:
    """Seeded weights with BN statistics calibrated on 112×112 noise (``exporter.seeded``)."""
    size = ARCFACE_INPUT_SIZE
    return seeded_weights(model, (CALIBRATION_FRAMES, 3, size, size), seed)
