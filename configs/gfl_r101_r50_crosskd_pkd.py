# GFL R101-FPN ms-2x -> GFL R50-FPN 1x, CrossKD + PKD on all 5 FPN levels, weight 6 (the authors' crosskd+pkd
# config: 43.9).
_base_ = ['./_base_/distill/gfl_r101_r50.py', './_base_/distill/dense_losses.py']

model = dict(crosskd=_base_.crosskd, distiller=_base_.crosskd_pkd_gfl_distiller)
