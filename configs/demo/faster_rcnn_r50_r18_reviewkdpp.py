# Demo: R50-FPN teacher -> R18-FPN student on the synthetic shapes, ReviewKD++: HCL on the FPN levels (through the
# 64-channel ABF connector, see faster_rcnn_r50_r18_reviewkd.py) + ND on the RoI feature; no logit KD. Weights: the
# paper's R101 -> R18 values (HCL 1.2, ND 1.0).
_base_ = ['./_base_/faster_rcnn_r50_r18.py', '../_base_/distill/roi_losses.py']

model = dict(distiller=_base_.reviewkdpp_distiller, class_means=_base_.class_means)
model['distiller']['connectors']['abf'].update(
    in_channels=_base_.channels, out_channels=_base_.channels, mid_channels=_base_.channels)
model['distiller']['distill_losses']['loss_hcl']['loss_weight'] = 1.2
custom_hooks = [dict(type='mmkd.ClassMeansHook', max_iters=50),  # teacher pass over 400 training images
                dict(type='mmkd.DistillMetricsHook', min_per_class=30, max_batches=10)]
