# Demo: R50-FPN teacher -> R18-FPN student on the synthetic shapes, ReviewKD: the student's FPN levels through the
# ABF connector, HCL against the teacher's FPN outputs. The demo FPN is 64 channels wide (teacher and student), so
# the connector's widths are 64 (the paper's 256 = its FPN width). HCL weight 1.2: the paper's R101 -> R18 value.
_base_ = ['./_base_/faster_rcnn_r50_r18.py', '../_base_/distill/roi_losses.py']

model = dict(distiller=_base_.reviewkd_distiller)
model['distiller']['connectors']['abf'].update(
    in_channels=_base_.channels, out_channels=_base_.channels, mid_channels=_base_.channels)
model['distiller']['distill_losses']['loss_hcl']['loss_weight'] = 1.2
