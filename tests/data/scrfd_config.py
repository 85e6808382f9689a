"""A custom-trained SCRFD's config file, as a user would pass it to --config."""

# Shaped like insightface configs/scrfd/scrfd_2.5g_bnkps.py: arithmetic, names, training keys.
CONFIG_TEXT = """
lr_mult = 8
lr_config = dict(policy='step', step=[55*lr_mult, 68*lr_mult])
total_epochs = 80*lr_mult
img_norm_cfg = dict(mean=[127.5, 127.5, 127.5], std=[128.0, 128.0, 128.0], to_rgb=True)
model = dict(
    type='SCRFD',
    backbone=dict(
        type='ResNetV1e', depth=0,
        block_cfg=dict(block='BasicBlock', stage_blocks=(3, 5, 3, 2), stage_planes=[24, 48, 48, 80]),
        base_channels=24, num_stages=4, out_indices=(0, 1, 2, 3),
        norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False, style='pytorch'),
    neck=dict(type='PAFPN', in_channels=[24, 48, 48, 80], out_channels=24, start_level=1,
              add_extra_convs='on_output', num_outs=3),
    bbox_head=dict(
        type='SCRFDHead', num_classes=1, in_channels=24, stacked_convs=2, feat_channels=64,
        norm_cfg=dict(type='BN', requires_grad=True),
        #norm_cfg=dict(type='GN', num_groups=16, requires_grad=True),
        cls_reg_share=True, strides_share=False, scale_mode=2,
        anchor_generator=dict(type='AnchorGenerator', ratios=[1.0], scales = [1,2],
                              base_sizes = [16, 64, 256], strides=[8, 16, 32]),
        loss_cls=dict(type='QualityFocalLoss', use_sigmoid=True, beta=2.0, loss_weight=1.0),
        loss_dfl=False, reg_max=8, loss_bbox=dict(type='DIoULoss', loss_weight=2.0),
        use_kps=True, loss_kps=dict(type='SmoothL1Loss', beta=0.1111111111111111, loss_weight=0.1),
        train_cfg=dict(assigner=dict(type='ATSSAssigner', topk=9), allowed_border=-1, pos_weight=-1, debug=False),
        test_cfg=dict(nms_pre=-1, min_bbox_size=0, score_thr=0.02, nms=dict(type='nms', iou_threshold=0.45),
                      max_per_img=-1)))
"""
