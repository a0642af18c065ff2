# GFL R101-FPN ms-2x -> GFL R50-FPN 1x, CrossKD (the authors' crosskd_r50_gflv1_r101-2x-ms_fpn_1x_coco: 40.2 -> 43.7;
# their teacher is the same checkpoint).
_base_ = ['./_base_/distill/gfl_r101_r50.py', './_base_/distill/dense_losses.py']

model = dict(crosskd=_base_.crosskd)
