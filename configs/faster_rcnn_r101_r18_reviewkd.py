# Faster R-CNN R101-FPN -> R18-FPN, ReviewKD (HCL 1.2) on the FPN. Recipe of the ReviewKD row the ND paper compares
# with (reported 36.75, unverified).
# Teacher (mmdet ms-3x) and student schedule (1x, multi-scale 640-800): _base_/distill/faster_rcnn_r101ms3x_r18.py
# Train: tools/dist_train.sh configs/faster_rcnn_r101_r18_reviewkd.py 8
_base_ = ['./_base_/distill/faster_rcnn_r101ms3x_r18.py', './_base_/distill/roi_losses.py']

model = dict(distiller=_base_.reviewkd_distiller)
model['distiller']['distill_losses']['loss_hcl']['loss_weight'] = 1.2  # the paper's ReviewKD KD_WEIGHT
