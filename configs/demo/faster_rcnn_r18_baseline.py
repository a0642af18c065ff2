# Demo baseline: the R18-FPN student of the demo distillation configs, trained alone.
_base_ = './_base_/faster_rcnn_r50_r18.py'

model = dict(_delete_=True, **_base_.model.architecture)
