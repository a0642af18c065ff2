# Demo: R50-FPN teacher -> R18-FPN student on the synthetic shapes, [PROPOSAL] iCD on the RoI logits alone (no KD).
_base_ = ['./_base_/faster_rcnn_r50_r18.py', '../_base_/distill/roi_losses.py']

model = dict(distiller=_base_.icd_nokd_distiller)
