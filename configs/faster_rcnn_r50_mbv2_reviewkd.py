# Faster R-CNN R50-FPN -> MobileNetV2-FPN, ReviewKD (HCL 2.0) on the FPN. Recipe of the ReviewKD row the ND paper
# compares with (reported 33.71, unverified).
# Teacher (mmdet ms-3x) and student schedule (1x, multi-scale 640-800): _base_/distill/faster_rcnn_r50ms3x_mbv2.py
# Train: tools/dist_train.sh configs/faster_rcnn_r50_mbv2_reviewkd.py 8
_base_ = ['./_base_/distill/faster_rcnn_r50ms3x_mbv2.py', './_base_/distill/roi_losses.py']

model = dict(distiller=_base_.reviewkd_distiller)
model['distiller']['distill_losses']['loss_hcl']['loss_weight'] = 2.0  # the paper's ReviewKD KD_WEIGHT
