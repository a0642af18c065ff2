# Demo: GFL R50-FPN teacher -> GFL R18-FPN student on the synthetic shapes, FGD (the authors' one-stage weights on
# the 64-channel FPN). Unlike the COCO config, the student's neck and head are not initialised from the teacher's.
_base_ = ['./_base_/gfl_r50_r18.py', '../_base_/distill/dense_losses.py']

model = dict(distiller=_base_.fgd_distiller_c64)
