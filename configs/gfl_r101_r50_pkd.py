# GFL R101-FPN ms-2x -> GFL R50-FPN 1x, PKD on FPN levels 0-3 (weight 10, mmrazor's one-stage setting).
_base_ = ['./_base_/distill/gfl_r101_r50.py', './_base_/distill/dense_losses.py']

model = dict(distiller=_base_.pkd_distiller)
