# Faster R-CNN R101-FPN -> R18-FPN, ReviewKD++: ReviewKD (HCL 1.2) on the FPN + ND on the RoI feature (ND 1.0). The ND
# paper's 37.43 mAP recipe.
# Teacher (mmdet ms-3x) and student schedule (1x, multi-scale 640-800): _base_/distill/faster_rcnn_r101ms3x_r18.py
# Train: tools/dist_train.sh configs/faster_rcnn_r101_r18_reviewkdpp.py 8
_base_ = ['./_base_/distill/faster_rcnn_r101ms3x_r18.py', './_base_/distill/roi_losses.py']

model = dict(distiller=_base_.reviewkdpp_distiller, class_means=_base_.class_means)
model['distiller']['distill_losses']['loss_hcl']['loss_weight'] = 1.2  # the paper's ReviewKD++ KD_WEIGHT
custom_hooks = [dict(type='mmkd.ClassMeansHook')]  # teacher class means, one pass before training
