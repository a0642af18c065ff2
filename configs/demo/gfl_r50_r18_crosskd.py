# Demo: GFL R50-FPN teacher -> GFL R18-FPN student on the synthetic shapes, CrossKD (k = 3, KD-QFL + bin-summed KL).
_base_ = ['./_base_/gfl_r50_r18.py', '../_base_/distill/dense_losses.py']

model = dict(crosskd=_base_.crosskd)
