# Demo: GFL R50-FPN teacher -> GFL R18-FPN student on the synthetic shapes, [PROPOSAL] ND on the positive priors'
# last classification feature toward the teacher's class means.
_base_ = ['./_base_/gfl_r50_r18.py', '../_base_/distill/dense_losses.py']

model = dict(distiller=_base_.nd_distiller, class_means=_base_.class_means)
custom_hooks = [dict(type='mmkd.ClassMeansHook', max_iters=50)]  # teacher pass over 400 training images
