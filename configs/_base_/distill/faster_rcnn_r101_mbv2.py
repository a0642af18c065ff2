# R101-FPN teacher -> MobileNetV2-FPN student. mmdet 3.3 has no MobileNetV2 Faster R-CNN: mmdet's MobileNetV2
# backbone with out_indices (1, 2, 4, 7) gives strides 4/8/16/32 and channels [24, 32, 96, 1280] for the FPN.
_base_ = './faster_rcnn_r101_r50.py'

model = dict(
    architecture=dict(
        backbone=dict(
            _delete_=True,
            type='MobileNetV2',
            out_indices=(1, 2, 4, 7),
            frozen_stages=1,
            norm_cfg=dict(type='BN', requires_grad=True),
            norm_eval=True,
            init_cfg=dict(type='Pretrained', checkpoint='open-mmlab://mmdet/mobilenet_v2')),
        neck=dict(in_channels=[24, 32, 96, 1280])))
