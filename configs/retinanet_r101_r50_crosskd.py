# RetinaNet R101-FPN 1x -> RetinaNet R50-FPN 1x, CrossKD (the authors' RetinaNet settings: k = 3, KD-QFL + GIoU;
# their R101 2x -> R50 2x config reports 37.4 -> 39.7).
_base_ = ['./_base_/distill/retinanet_r101_r50.py', './_base_/distill/dense_losses.py']

model = dict(crosskd=_base_.crosskd)
