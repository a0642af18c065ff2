# The MobileNetV2-FPN student, as a change of the R50-FPN student: `model = dict(architecture=_base_.mbv2_student)`.
# mmdet 3.3 has no MobileNetV2 Faster R-CNN: mmdet's MobileNetV2 backbone with out_indices (1, 2, 4, 7) gives
# strides 4/8/16/32 and channels [24, 32, 96, 1280] for the FPN.
mbv2_student = dict(
    backbone=dict(
        _delete_=True,
        type='MobileNetV2',
        out_indices=(1, 2, 4, 7),
        frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=True,
        init_cfg=dict(type='Pretrained', checkpoint='open-mmlab://mmdet/mobilenet_v2')),
    neck=dict(in_channels=[24, 32, 96, 1280]))
