# The R18-FPN student of the R101 distillation configs, trained alone (mmdet 1x schedule).
_base_ = './_base_/distill/faster_rcnn_r101_r18.py'

model = dict(_delete_=True, **_base_.model.architecture)
