# Faster R-CNN R101-FPN -> R50-FPN, [PROPOSAL] iCD on the RoI logits, grouped by image, + KD.
# Train: tools/dist_train.sh configs/faster_rcnn_r101_r50_icd.py 8
_base_ = ['./_base_/distill/faster_rcnn_r101_r50.py', './_base_/distill/roi_losses.py']

model = dict(distiller=_base_.icd_distiller)
