"""SCRFD variants as values: the ``model=dict(backbone=..., neck=..., bbox_head=...)`` of each
insightface ``configs/scrfd/*.py``, and the ModelSpec of an exported detector.

A custom-trained SCRFD is described the same way, by reading its config file
(``facebatch.configs.mmdet_config``), and goes through the same builder.
"""

from __future__ import annotations

import difflib
from typing import Any

from facebatch.configs.spec import (
    BATCH,
    HEIGHT,
    SEEDED_TAG,
    WIDTH,
    Family,
    HeadLayout,
    ModelSpec,
    Normalize,
    TensorSpec,
    fp32_output,
)
from facebatch.core.errors import SpecError

STRIDES = (8, 16, 32)
SCRFD_NORMALIZE = Normalize(mean=(127.5, 127.5, 127.5), std=(128.0, 128.0, 128.0), rgb=True)
KPS_PER_FACE = 5
OUTPUT_CHANNELS = {"score": 1, "bbox": 4, "kps": 2 * KPS_PER_FACE}


def _mobilenet(planes: list[int], blocks: tuple[int, ...]) -> dict[str, Any]:
    return dict(type="MobileNetV1", block_cfg=dict(stage_blocks=blocks, stage_planes=planes))


def _resnet(block: str, blocks: tuple[int, ...], planes: list[int], base: int) -> dict[str, Any]:
    return dict(
        type="ResNetV1e",
        depth=0,
        block_cfg=dict(block=block, stage_blocks=blocks, stage_planes=planes),
        base_channels=base,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        norm_cfg=dict(type="BN", requires_grad=True),
        norm_eval=False,
        style="pytorch",
    )


def _neck(in_channels: list[int], out_channels: int) -> dict[str, Any]:
    return dict(
        type="PAFPN",
        in_channels=in_channels,
        out_channels=out_channels,
        start_level=1,
        add_extra_convs="on_output",
        num_outs=3,
    )


def _norm(kind: str, groups: int = 0) -> dict[str, Any]:
    if kind == "GN":
        return dict(type="GN", num_groups=groups, requires_grad=True)
    return dict(type="BN", requires_grad=True)


def _head(
    in_channels: int,
    feat_channels: int,
    stacked_convs: int,
    norm_cfg: dict[str, Any],
    *,
    dw_conv: bool,
    strides_share: bool,
    scale_mode: int,
    use_kps: bool,
) -> dict[str, Any]:
    return dict(
        type="SCRFDHead",
        num_classes=1,
        in_channels=in_channels,
        stacked_convs=stacked_convs,
        feat_channels=feat_channels,
        norm_cfg=norm_cfg,
        cls_reg_share=True,
        strides_share=strides_share,
        dw_conv=dw_conv,
        scale_mode=scale_mode,
        anchor_generator=dict(
            type="AnchorGenerator", ratios=[1.0], scales=[1, 2], base_sizes=[16, 64, 256], strides=list(STRIDES)
        ),
        loss_dfl=False,
        reg_max=8,
        use_kps=use_kps,
    )


def _model(backbone: dict, neck: dict, bbox_head: dict) -> dict[str, Any]:
    return dict(type="SCRFD", backbone=backbone, neck=neck, bbox_head=bbox_head)


_MBN_500M = _mobilenet([16, 16, 40, 72, 152, 288], (2, 3, 2, 6))
_MBN_1G = _mobilenet([32, 48, 48, 160, 216, 312], (3, 2, 1, 5))
_RES_1_3G = _resnet("BasicBlock", (3, 5, 3, 2), [16, 32, 40, 72], 16)
_RES_2_5G = _resnet("BasicBlock", (3, 5, 3, 2), [24, 48, 48, 80], 24)
_RES_10G = _resnet("BasicBlock", (3, 4, 2, 3), [56, 88, 88, 224], 56)
_RES_34G = _resnet("Bottleneck", (17, 16, 2, 8), [56, 56, 144, 184], 56)

# fmt: off
SCRFD_CONFIGS: dict[str, dict[str, Any]] = {
    "scrfd_500m": _model(_MBN_500M, _neck([40, 72, 152, 288], 16),
                         _head(16, 64, 2, _norm("GN", 16), dw_conv=True, strides_share=True, scale_mode=2, use_kps=False)),
    "scrfd_500m_bnkps": _model(_MBN_500M, _neck([40, 72, 152, 288], 16),
                               _head(16, 64, 2, _norm("BN"), dw_conv=True, strides_share=False, scale_mode=0, use_kps=True)),
    "scrfd_1g": _model(_MBN_1G, _neck([48, 160, 216, 312], 24),
                       _head(24, 96, 2, _norm("GN", 8), dw_conv=True, strides_share=True, scale_mode=2, use_kps=False)),
    "scrfd_1gbn": _model(_MBN_1G, _neck([48, 160, 216, 312], 24),
                         _head(24, 96, 2, _norm("BN"), dw_conv=True, strides_share=False, scale_mode=2, use_kps=False)),
    "scrfd_1.3g": _model(_RES_1_3G, _neck([16, 32, 40, 72], 24),
                         _head(24, 48, 2, _norm("GN", 16), dw_conv=False, strides_share=True, scale_mode=2, use_kps=False)),
    "scrfd_2.5g": _model(_RES_2_5G, _neck([24, 48, 48, 80], 24),
                         _head(24, 64, 2, _norm("GN", 16), dw_conv=False, strides_share=True, scale_mode=2, use_kps=False)),
    "scrfd_2.5g_bnkps": _model(_RES_2_5G, _neck([24, 48, 48, 80], 24),
                               _head(24, 64, 2, _norm("BN"), dw_conv=False, strides_share=False, scale_mode=2, use_kps=True)),
    "scrfd_10g": _model(_RES_10G, _neck([56, 88, 88, 224], 56),
                        _head(56, 80, 3, _norm("GN", 16), dw_conv=False, strides_share=True, scale_mode=2, use_kps=False)),
    "scrfd_10g_bnkps": _model(_RES_10G, _neck([56, 88, 88, 224], 56),
                              _head(56, 80, 3, _norm("BN"), dw_conv=False, strides_share=False, scale_mode=2, use_kps=True)),
    "scrfd_34g": _model(_RES_34G, _neck([224, 224, 576, 736], 128),
                        _head(128, 256, 2, _norm("GN", 32), dw_conv=False, strides_share=True, scale_mode=2, use_kps=False)),
}
# fmt: on

DEFAULT_SCRFD = "scrfd_10g_bnkps"  # the detector a release exports unless told otherwise (make export's default too)
DEFAULT_SCRFD_SIZE = 320  # the size facebatch exports detectors at unless told otherwise
INSIGHTFACE_DET_SIZE = (
    640  # the size insightface runs detectors at: foreign files with a symbolic size are checked there
)
ANCHORS_PER_LOCATION = 2  # ratios [1.0] × scales [1, 2] in every released config


def scrfd_config(variant: str) -> dict[str, Any]:
    """The mmdet-style model dict of a named variant; unknown names suggest the close ones."""
    if variant in SCRFD_CONFIGS:
        return SCRFD_CONFIGS[variant]
    close = difflib.get_close_matches(variant, list(SCRFD_CONFIGS), n=3, cutoff=0.5)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    raise SpecError(f"unknown SCRFD variant {variant!r}; {hint}known: {', '.join(SCRFD_CONFIGS)}", field="model")


def head_layout_from_head(anchor_generator: dict[str, Any], use_kps: bool) -> HeadLayout:
    """What a ``bbox_head`` with this anchor generator emits."""
    strides = tuple(int(s[0] if isinstance(s, (list, tuple)) else s) for s in anchor_generator.get("strides", STRIDES))
    per_location = len(anchor_generator.get("ratios", [1.0])) * len(anchor_generator.get("scales", [1, 2]))
    return HeadLayout(strides=strides, anchors_per_location=per_location, use_kps=bool(use_kps))


def head_layout(model_cfg: dict[str, Any]) -> HeadLayout:
    """What the detector of an mmdet-style model dict emits."""
    head = model_cfg["bbox_head"]
    return head_layout_from_head(head.get("anchor_generator", {}), head.get("use_kps", False))


def released_head_layout(use_kps: bool) -> HeadLayout:
    """The head of every released SCRFD (strides 8/16/32, 2 anchors): what a foreign detector
    file is assumed to have when only its outputs are known."""
    return HeadLayout(STRIDES, ANCHORS_PER_LOCATION, use_kps)


def check_input_size(height: int, width: int, multiple: int = max(STRIDES)) -> None:
    for label, value in (("height", height), ("width", width)):
        if value <= 0 or value % multiple:
            raise SpecError(
                f"input {label} {value} is not a positive multiple of {multiple} (SCRFD's coarsest stride); "
                f"use e.g. {max(multiple, round(value / multiple) * multiple)}",
                field="size",
            )


def artifact_stem(variant: str, use_kps: bool) -> str:
    """File stem: the kps detectors are the ones model packs ship (det_10g = scrfd_10g_bnkps),
    so they get the short name; detectors without landmarks say so."""
    if variant.endswith("_bnkps"):
        return variant[: -len("_bnkps")]
    return variant if use_kps else f"{variant}_nokps"


def size_tag(height: int, width: int, dynamic_size: bool) -> str:
    return "dyn" if dynamic_size else (str(height) if height == width else f"{height}x{width}")


SCRFD_DESCRIPTIONS = {
    "output_layout": "[batch, (y*W + x)*anchors + a, C]; score sigmoid-ed; bbox (l,t,r,b) and kps "
    "(x0,y0..x4,y4) in units of the stride, relative to anchor centre (x*stride, y*stride)",
    "letterbox": "top-left, zero padding, keep aspect ratio",
}


def scrfd_spec(
    variant: str,
    layout: HeadLayout,
    height: int,
    width: int,
    *,
    dynamic_size: bool = False,
    seeded: bool = False,
) -> ModelSpec:
    """The spec of an exported detector: input ``input.1`` [batch,3,H,W] and one [batch, rows, C]
    output per kind and stride, named ``score_8`` … ``kps_32``. ``seeded``: its weights are
    seeded random ones, and its default file name says so."""
    check_input_size(height, width, layout.size_multiple)
    h_dim: int | str = HEIGHT if dynamic_size else height
    w_dim: int | str = WIDTH if dynamic_size else width
    outputs = []
    for kind in layout.kinds:
        for stride in layout.strides:
            rows: int | str = f"rows_{stride}" if dynamic_size else layout.rows(stride, height, width)
            outputs.append(fp32_output(f"{kind}_{stride}", (BATCH, rows, OUTPUT_CHANNELS[kind]), embedder=False))
    stem = f"{artifact_stem(variant, layout.use_kps)}_{size_tag(height, width, dynamic_size)}"
    return ModelSpec(
        name=variant,
        family=Family.SCRFD,
        inputs=(TensorSpec("input.1", (BATCH, 3, h_dim, w_dim)),),
        outputs=tuple(outputs),
        normalize=SCRFD_NORMALIZE,
        input_size=(height, width),
        default_filename=f"{stem}{SEEDED_TAG if seeded else ''}_batch.onnx",
        dynamic_size=dynamic_size,
        head=layout,
        descriptions=SCRFD_DESCRIPTIONS,
    )
