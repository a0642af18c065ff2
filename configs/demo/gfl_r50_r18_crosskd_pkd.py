# Demo: GFL R50-FPN teacher -> GFL R18-FPN student on the synthetic shapes, CrossKD + PKD (all 5 levels, weight 6).
_base_ = ['./_base_/gfl_r50_r18.py', '../_base_/distill/dense_losses.py']

model = dict(crosskd=_base_.crosskd, distiller=_base_.crosskd_pkd_gfl_distiller)
