# GFL R101-FPN ms-2x -> GFL R50-FPN 1x, CWD on the gfl_cls logit maps (tau 1, weight 5 per level): mmrazor 0.x's
# config behind the reported 40.2 -> 41.9.
_base_ = ['./_base_/distill/gfl_r101_r50.py', './_base_/distill/dense_losses.py']

model = dict(distiller=_base_.cwd_distiller)
