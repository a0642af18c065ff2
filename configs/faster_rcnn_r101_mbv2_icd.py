# Faster R-CNN R101-FPN -> MobileNetV2-FPN, [PROPOSAL] iCD on the RoI logits, grouped by image, + KD.
# Train: tools/dist_train.sh configs/faster_rcnn_r101_mbv2_icd.py 8
_base_ = ['./_base_/distill/faster_rcnn_r101_mbv2.py', './_base_/distill/roi_losses.py']

model = dict(distiller=_base_.icd_distiller)
