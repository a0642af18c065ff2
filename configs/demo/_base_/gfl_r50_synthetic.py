# mmdet's GFL (R50-FPN) on mmkd's synthetic shapes, sized as the demo Faster R-CNN (faster_rcnn_r50_synthetic.py,
# whose data, schedule and optimizer it keeps): 64x64 images with 1-2 shapes of 16-48 px (4 classes), a
# width-reduced ResNet (base_channels=16), a 64-channel FPN over strides 8-128 and a 64-channel GFL head whose
# anchors (octave_base_scale 4: 32 px at stride 8) fit the objects; no pretrained weights.
_base_ = './faster_rcnn_r50_synthetic.py'

channels = _base_.channels
model = dict(
    _delete_=True,
    _scope_='mmdet',
    type='GFL',
    data_preprocessor=_base_.model.data_preprocessor,
    backbone=_base_.model.backbone,
    neck=dict(type='FPN', in_channels=[64, 128, 256, 512], out_channels=channels, start_level=1,
              add_extra_convs='on_output', num_outs=5),
    bbox_head=dict(
        type='GFLHead',
        num_classes=len(_base_.metainfo['classes']),
        in_channels=channels,
        stacked_convs=4,
        feat_channels=channels,
        anchor_generator=dict(type='AnchorGenerator', ratios=[1.0], octave_base_scale=4, scales_per_octave=1,
                              strides=[8, 16, 32, 64, 128]),
        loss_cls=dict(type='QualityFocalLoss', use_sigmoid=True, beta=2.0, loss_weight=1.0),
        loss_dfl=dict(type='DistributionFocalLoss', loss_weight=0.25),
        reg_max=16,
        loss_bbox=dict(type='GIoULoss', loss_weight=2.0)),
    train_cfg=dict(assigner=dict(type='ATSSAssigner', topk=9), allowed_border=-1, pos_weight=-1, debug=False),
    test_cfg=dict(nms_pre=300, min_bbox_size=0, score_thr=0.05, nms=dict(type='nms', iou_threshold=0.6),
                  max_per_img=20))
custom_hooks = []  # the base's DistillMetricsHook reads RoI features, which GFL has not
