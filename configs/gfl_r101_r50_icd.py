# GFL R101-FPN ms-2x -> GFL R50-FPN 1x, [PROPOSAL] iCD on the positive priors' class logits, per image.
_base_ = ['./_base_/distill/gfl_r101_r50.py', './_base_/distill/dense_losses.py']

model = dict(distiller=_base_.icd_distiller)
