# Demo: GFL R50-FPN teacher -> GFL R18-FPN student on the synthetic shapes, [PROPOSAL] iCD on the positives' logits.
_base_ = ['./_base_/gfl_r50_r18.py', '../_base_/distill/dense_losses.py']

model = dict(distiller=_base_.icd_distiller)
