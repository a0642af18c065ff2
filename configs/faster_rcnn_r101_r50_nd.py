# Faster R-CNN R101-FPN -> R50-FPN, KD++ (ND paper): ND on the RoI feature + KD on the RoI logits (T = 1).
# Train: tools/dist_train.sh configs/faster_rcnn_r101_r50_nd.py 8
_base_ = ['./_base_/distill/faster_rcnn_r101_r50.py', './_base_/distill/roi_losses.py']

model = dict(distiller=_base_.kdpp_distiller, class_means=_base_.class_means)
custom_hooks = [dict(type='mmkd.ClassMeansHook')]  # teacher class means, one pass before training
