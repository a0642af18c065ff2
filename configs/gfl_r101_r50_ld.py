# GFL R101-FPN ms-2x -> GFL R50-FPN 1x, LD (mmdet 3.3's ld configs: KL T 10, weight 0.25 on the positive anchors'
# box-side distributions). mmdet reports 40.1 -> 41.0 for its LDHead version of this pair.
_base_ = ['./_base_/distill/gfl_r101_r50.py', './_base_/distill/dense_losses.py']

model = dict(ld=_base_.ld)
