# The GFL R50-FPN 1x student of the GFL distillation configs, trained alone (mmdet's gfl_r50_fpn_1x_coco, 40.2).
_base_ = './_base_/distill/gfl_r101_r50.py'

model = dict(_delete_=True, **_base_.model.architecture)
