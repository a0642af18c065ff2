# The paper's setup (faster_rcnn_r101ms3x_r50.py: R101-FPN ms-3x teacher, 1x multi-scale 640-800 student) with the
# MobileNetV2-FPN student (the same delta as faster_rcnn_r101_mbv2.py). The paper's MV2 pair has an R50 teacher:
# faster_rcnn_r50ms3x_mbv2.py.
_base_ = './faster_rcnn_r101ms3x_r50.py'

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
