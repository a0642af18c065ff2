# GFL R101-FPN ms-2x -> GFL R50-FPN 1x, [PROPOSAL] ND on the classification branch's last feature at the positive
# priors, toward the teacher's class means (filled by one teacher pass before training).
_base_ = ['./_base_/distill/gfl_r101_r50.py', './_base_/distill/dense_losses.py']

model = dict(distiller=_base_.nd_distiller, class_means=_base_.class_means)
custom_hooks = [dict(type='mmkd.ClassMeansHook')]
