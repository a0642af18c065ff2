# Demo: GFL R50-FPN teacher -> GFL R18-FPN student on the synthetic shapes, LD (KL T 10, weight 0.25, positive anchors).
_base_ = ['./_base_/gfl_r50_r18.py', '../_base_/distill/dense_losses.py']

model = dict(ld=_base_.ld)
