# Faster R-CNN R101-FPN -> MobileNetV2-FPN, [PROPOSAL] NC-inspired losses (NC1 contrast/alignment, NC2) on the RoI
# feature + KD.
# Train: tools/dist_train.sh configs/faster_rcnn_r101_mbv2_nc.py 8
_base_ = ['./_base_/distill/faster_rcnn_r101_mbv2.py', './_base_/distill/roi_losses.py']

model = dict(distiller=_base_.nc_distiller, class_means=_base_.class_means)
custom_hooks = [dict(type='mmkd.ClassMeansHook')]  # teacher class means, one pass before training
