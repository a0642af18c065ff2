# Faster R-CNN R101-FPN -> MobileNetV2-FPN, ReviewKD++: ReviewKD (HCL 2.2) on the FPN + ND on the RoI feature (ND
# 1.0). Not a pair of the paper (its MV2 pair has an R50 teacher: faster_rcnn_r50_mbv2_reviewkdpp.py); weights of its
# R50 -> MV2 pair.
# Teacher (mmdet ms-3x) and student schedule (1x, multi-scale 640-800): _base_/distill/faster_rcnn_r101ms3x_mbv2.py
# Train: tools/dist_train.sh configs/faster_rcnn_r101_mbv2_reviewkdpp.py 8
_base_ = ['./_base_/distill/faster_rcnn_r101ms3x_mbv2.py', './_base_/distill/roi_losses.py']

model = dict(distiller=_base_.reviewkdpp_distiller, class_means=_base_.class_means)
model['distiller']['distill_losses']['loss_hcl']['loss_weight'] = 2.2  # the paper's ReviewKD++ KD_WEIGHT
custom_hooks = [dict(type='mmkd.ClassMeansHook')]  # teacher class means, one pass before training
