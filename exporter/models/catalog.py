"""What ``facebatch models`` lists: every SCRFD variant and ArcFace network this tool can
build, with its parameter count (from the built model) and default artifact name."""

from __future__ import annotations

from dataclasses import dataclass

from facebatch.configs.arcface import ARCFACE_CONFIGS, IResNetConfig, arcface_spec
from facebatch.configs.scrfd import DEFAULT_SCRFD_SIZE, SCRFD_CONFIGS, head_layout, scrfd_spec
from facebatch.exporter.models.arcface import build_arcface
from facebatch.exporter.models.scrfd import build_scrfd


@dataclass(frozen=True)
class ScrfdEntry:
    variant: str
    backbone: str
    head_norm: str
    landmarks: bool
    parameters: int
    default_artifact: str  # with real weights, at the default size


@dataclass(frozen=True)
class ArcFaceEntry:
    model: str  # arcface_r50
    short_name: str  # r50: accepted wherever the model is named
    backbone: str
    layers: tuple[int, ...]
    embedding_size: int
    parameters: int
    default_artifact: str  # with real weights


def scrfd_catalog() -> list[ScrfdEntry]:
    entries = []
    for variant, cfg in SCRFD_CONFIGS.items():
        layout = head_layout(cfg)
        spec = scrfd_spec(variant, layout, DEFAULT_SCRFD_SIZE, DEFAULT_SCRFD_SIZE)
        parameters = sum(p.numel() for p in build_scrfd(**cfg).parameters())
        entries.append(
            ScrfdEntry(
                variant,
                cfg["backbone"]["type"],
                cfg["bbox_head"]["norm_cfg"]["type"],
                layout.use_kps,
                parameters,
                spec.default_filename,
            )
        )
    return entries


def arcface_catalog() -> list[ArcFaceEntry]:
    entries = []
    for network, config in ARCFACE_CONFIGS.items():
        spec = arcface_spec(network)
        layers = config.layers if isinstance(config, IResNetConfig) else config.blocks
        parameters = sum(p.numel() for p in build_arcface(network).parameters())
        entries.append(
            ArcFaceEntry(
                spec.name,
                network,
                type(config).__name__.removesuffix("Config"),
                layers,
                spec.embedding_size or 0,
                parameters,
                spec.default_filename,
            )
        )
    return entries
