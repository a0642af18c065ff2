# The RetinaNet R50-FPN 1x student of the RetinaNet distillation configs, trained alone (mmdet's, 36.5).
_base_ = './_base_/distill/retinanet_r101_r50.py'

model = dict(_delete_=True, **_base_.model.architecture)
