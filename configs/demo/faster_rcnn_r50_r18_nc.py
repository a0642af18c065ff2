# Demo: R50-FPN teacher -> R18-FPN student on the synthetic shapes, [PROPOSAL] NC-inspired losses on the RoI
# feature + KD.
_base_ = ['./_base_/faster_rcnn_r50_r18.py', '../_base_/distill/roi_losses.py']

model = dict(distiller=_base_.nc_distiller, class_means=_base_.class_means)
custom_hooks = [dict(type='mmkd.ClassMeansHook', max_iters=50),  # teacher pass over 400 training images
                dict(type='mmkd.DistillMetricsHook', min_per_class=30, max_batches=10)]
