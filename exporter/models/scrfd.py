"""SCRFD detector in plain PyTorch with mmdet/mmcv module names.

Order as in timm: blocks (ConvModule, Scale, Integral: ``mmcv_bricks``), neck, head, detector, then the
builder that takes the arguments of an mmdet config's ``model=dict(...)`` and the
per-variant presets. The head always emits the batch-keeping export layout
``[N, H*W*anchors, C]``, never the batch-folding one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from facebatch.configs.scrfd import head_layout_from_head, scrfd_config
from facebatch.configs.spec import HeadLayout
from facebatch.core.errors import SpecError
from facebatch.exporter.models.mmcv_bricks import ConvModule, DepthwiseSeparableConvModule, Integral, Scale
from facebatch.exporter.models.scrfd_backbones import MobileNetV1, ResNetV1e
from facebatch.exporter.weights.seeded import seeded_weights

# Config keys that only matter for training; accepted and ignored.
TRAINING_ONLY_KEYS = frozenset(
    {
        "loss_cls",
        "loss_bbox",
        "loss_kps",
        "loss_qfl",
        "train_cfg",
        "test_cfg",
        "bbox_coder",
        "reg_decoded_bbox",
        "background_label",
        "norm_eval",
        "frozen_stages",
        "zero_init_residual",
        "with_cp",
        "pretrained",
        "init_cfg",
        "requires_grad",
        "conv_cfg",
        "type",
        "relu_before_extra_convs",
        "no_norm_on_lateral",
        "upsample_cfg",
        "act_cfg",
        "dcn",
        "stage_with_dcn",
        "plugins",
    }
)


def _checked_kwargs(part: str, kwargs: dict[str, Any], accepted: Iterable[str]) -> dict[str, Any]:
    accepted = set(accepted)
    unknown = sorted(k for k in kwargs if k not in accepted and k not in TRAINING_ONLY_KEYS)
    if unknown:
        raise SpecError(f"{part} config has keys this builder does not understand: {', '.join(unknown)}")
    if kwargs.get("conv_cfg") not in (None, {}):
        raise SpecError(f"{part} conv_cfg={kwargs['conv_cfg']!r} is not supported; SCRFD uses plain Conv2d")
    return {k: v for k, v in kwargs.items() if k in accepted}


# ---------------------------------------------------------------- neck
class PAFPN(nn.Module):
    """mmdet PAFPN without norms or activations: lateral → top-down → fpn → bottom-up → pafpn."""

    def __init__(
        self,
        in_channels: list[int],
        out_channels: int,
        num_outs: int,
        start_level: int = 0,
        end_level: int = -1,
        add_extra_convs: bool | str = False,
        norm_cfg: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if norm_cfg:
            raise SpecError("PAFPN with norm_cfg is not supported; SCRFD necks have plain convs")
        end = len(in_channels) if end_level == -1 else end_level
        self.start_level = start_level
        self.levels = end - start_level
        if num_outs != self.levels:
            raise SpecError(
                f"PAFPN num_outs={num_outs} needs extra levels beyond the {self.levels} backbone levels; "
                "only configs without extra FPN levels (all released SCRFD models) are supported"
            )
        self.lateral_convs = nn.ModuleList(
            ConvModule(in_channels[i], out_channels, 1, activate=False) for i in range(start_level, end)
        )
        self.fpn_convs = nn.ModuleList(
            ConvModule(out_channels, out_channels, 3, padding=1, activate=False) for _ in range(self.levels)
        )
        self.downsample_convs = nn.ModuleList(
            ConvModule(out_channels, out_channels, 3, stride=2, padding=1, activate=False)
            for _ in range(self.levels - 1)
        )
        self.pafpn_convs = nn.ModuleList(
            ConvModule(out_channels, out_channels, 3, padding=1, activate=False) for _ in range(self.levels - 1)
        )

    def forward(self, inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        laterals = [conv(inputs[i + self.start_level]) for i, conv in enumerate(self.lateral_convs)]
        for i in range(self.levels - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + F.interpolate(
                laterals[i], size=laterals[i - 1].shape[2:], mode="nearest"
            )
        inter = [self.fpn_convs[i](laterals[i]) for i in range(self.levels)]
        for i in range(self.levels - 1):
            inter[i + 1] = inter[i + 1] + self.downsample_convs[i](inter[i])
        return (inter[0], *[self.pafpn_convs[i - 1](inter[i]) for i in range(1, self.levels)])


# ---------------------------------------------------------------- head
class SCRFDHead(nn.Module):
    """insightface SCRFDHead (inference part). Tower keys are '0' when strides share
    weights, else the literal AnchorGenerator stride tuple string, e.g. '(8, 8)'."""

    NK = 5

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        anchor_generator: dict[str, Any],
        stacked_convs: int | list[int] = 4,
        feat_channels: int = 256,
        feat_mults: list[float] | None = None,
        norm_cfg: dict[str, Any] | None = None,
        cls_reg_share: bool = False,
        strides_share: bool = True,
        scale_mode: int = 1,
        dw_conv: bool = False,
        use_kps: bool = False,
        reg_max: int = 8,
        loss_dfl: Any = None,
    ) -> None:
        super().__init__()
        if loss_dfl:
            raise SpecError(
                "SCRFD heads with DFL (loss_dfl) cannot be exported; every released model has loss_dfl=False"
            )
        if norm_cfg is None:
            norm_cfg = dict(type="GN", num_groups=32)
        self.layout = head_layout_from_head(anchor_generator, use_kps)
        self.cls_out_channels = num_classes
        self.num_anchors = self.layout.anchors_per_location
        self.strides_share = strides_share
        self.cls_reg_share = cls_reg_share
        self.use_kps = use_kps
        self.use_scale = scale_mode > 0 and (strides_share or scale_mode == 2)
        self.dw_conv = dw_conv
        self.norm_cfg = norm_cfg

        keys = ["0"] if strides_share else [str((s, s)) for s in self.layout.strides]
        self.cls_stride_convs = nn.ModuleDict()
        self.reg_stride_convs = nn.ModuleDict()
        self.stride_cls = nn.ModuleDict()
        self.stride_reg = nn.ModuleDict()
        if use_kps:
            self.stride_kps = nn.ModuleDict()
        for idx, key in enumerate(keys):
            depth = stacked_convs[idx] if isinstance(stacked_convs, (list, tuple)) else stacked_convs
            feat = int(feat_channels * (feat_mults[idx] if feat_mults is not None else 1))
            chans = [in_channels] + [feat] * depth
            self.cls_stride_convs[key] = nn.ModuleList(self._tower_unit(chans[i], chans[i + 1]) for i in range(depth))
            self.reg_stride_convs[key] = nn.ModuleList(
                () if cls_reg_share else (self._tower_unit(chans[i], chans[i + 1]) for i in range(depth))
            )
            self.stride_cls[key] = nn.Conv2d(feat, self.cls_out_channels * self.num_anchors, 3, padding=1)
            self.stride_reg[key] = nn.Conv2d(feat, 4 * self.num_anchors, 3, padding=1)
            if use_kps:
                self.stride_kps[key] = nn.Conv2d(feat, self.NK * 2 * self.num_anchors, 3, padding=1)
        if self.use_scale:
            self.scales = nn.ModuleList(Scale(1.0) for _ in self.layout.strides)
        self.integral = Integral(reg_max)

    def _tower_unit(self, cin: int, cout: int) -> nn.Module:
        if self.dw_conv:
            return DepthwiseSeparableConvModule(cin, cout, self.norm_cfg)
        return ConvModule(cin, cout, 3, 1, 1, norm_cfg=self.norm_cfg)

    def _key(self, stride: int) -> str:
        return "0" if self.strides_share else str((stride, stride))

    @staticmethod
    def _rows(x: torch.Tensor, channels: int) -> torch.Tensor:
        # NCHW -> [N, H*W*anchors, C]; dim 0 stays the batch (the official files used
        # permute(2,3,0,1).reshape(-1, C), which folds frames into rows).
        return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1, channels)

    def forward_level(self, x: torch.Tensor, level: int) -> tuple[torch.Tensor, ...]:
        key = self._key(self.layout.strides[level])
        cls_feat = x
        for unit in self.cls_stride_convs[key]:
            cls_feat = unit(cls_feat)
        reg_feat = cls_feat
        if not self.cls_reg_share:
            reg_feat = x
            for unit in self.reg_stride_convs[key]:
                reg_feat = unit(reg_feat)
        score = self._rows(self.stride_cls[key](cls_feat), self.cls_out_channels).sigmoid()
        bbox = self.stride_reg[key](reg_feat)
        if self.use_scale:
            bbox = self.scales[level](bbox)
        outs = (score, self._rows(bbox, 4))
        if self.use_kps:
            outs += (self._rows(self.stride_kps[key](reg_feat), 2 * self.NK),)
        return outs

    def forward(self, feats: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        per_level = [self.forward_level(f, i) for i, f in enumerate(feats)]
        # scores s8/16/32, bboxes s8/16/32, kps s8/16/32
        return tuple(level[kind] for kind in range(len(per_level[0])) for level in per_level)


# ---------------------------------------------------------------- detector
BACKBONES = {"MobileNetV1": MobileNetV1, "ResNetV1e": ResNetV1e}
BACKBONE_ARGS = {
    "MobileNetV1": ("block_cfg", "in_channels", "num_stages", "out_indices"),
    "ResNetV1e": (
        "depth",
        "block_cfg",
        "base_channels",
        "stem_channels",
        "in_channels",
        "num_stages",
        "strides",
        "out_indices",
        "norm_cfg",
        "style",
    ),
}
NECK_ARGS = ("in_channels", "out_channels", "num_outs", "start_level", "end_level", "add_extra_convs", "norm_cfg")
HEAD_ARGS = (
    "num_classes",
    "in_channels",
    "anchor_generator",
    "stacked_convs",
    "feat_channels",
    "feat_mults",
    "norm_cfg",
    "cls_reg_share",
    "strides_share",
    "scale_mode",
    "dw_conv",
    "use_kps",
    "reg_max",
    "loss_dfl",
)


class SCRFD(nn.Module):
    """backbone → PAFPN → SCRFDHead; returns the export outputs in official order."""

    def __init__(self, backbone: nn.Module, neck: PAFPN, bbox_head: SCRFDHead) -> None:
        super().__init__()
        self.backbone = backbone
        self.neck = neck
        self.bbox_head = bbox_head

    @property
    def layout(self) -> HeadLayout:
        return self.bbox_head.layout

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.bbox_head(self.neck(self.backbone(x)))


def build_scrfd(
    backbone: dict[str, Any],
    neck: dict[str, Any],
    bbox_head: dict[str, Any],
    **detector: Any,
) -> SCRFD:
    """Build from the arguments of an mmdet config's ``model=dict(type='SCRFD', ...)``."""
    _checked_kwargs("model", detector, ())
    kind = backbone.get("type")
    if kind not in BACKBONES:
        raise SpecError(f"backbone type {kind!r} is not supported; SCRFD uses {' or '.join(BACKBONES)}")
    if neck.get("type", "PAFPN") != "PAFPN":
        raise SpecError(f"neck type {neck.get('type')!r} is not supported; SCRFD uses PAFPN")
    if bbox_head.get("type", "SCRFDHead") != "SCRFDHead":
        raise SpecError(f"head type {bbox_head.get('type')!r} is not supported; SCRFD uses SCRFDHead")
    model = SCRFD(
        BACKBONES[kind](**_checked_kwargs(f"backbone ({kind})", backbone, BACKBONE_ARGS[kind])),
        PAFPN(**_checked_kwargs("neck (PAFPN)", neck, NECK_ARGS)),
        SCRFDHead(**_checked_kwargs("bbox_head (SCRFDHead)", bbox_head, HEAD_ARGS)),
    )
    return model.eval()


def scrfd_from_variant(variant: str) -> SCRFD:
    """One of the released configs by name, e.g. ``scrfd_10g_bnkps``."""
    return build_scrfd(**scrfd_config(variant))


PREDICTION_PREFIXES = ("bbox_head.stride_cls.", "bbox_head.stride_reg.", "bbox_head.stride_kps.")


def seeded_init(model: nn.Module, seed: int = 0, calibration_size: int = 128) -> nn.Module:
    """Seeded SCRFD weights (``exporter.seeded``); prediction convs get LeCun scale, which puts
    bbox/kps outputs in the range a trained SCRFD produces (|x| up to ~10 stride units)."""
    return seeded_weights(model, (4, 3, calibration_size, calibration_size), seed, lecun_prefixes=PREDICTION_PREFIXES)
