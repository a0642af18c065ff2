# Faster R-CNN R101-FPN -> R50-FPN, plain KD on the RoI class logits (T = 1), for comparison.
# Train: tools/dist_train.sh configs/faster_rcnn_r101_r50_kd.py 8
_base_ = ['./_base_/distill/faster_rcnn_r101_r50.py', './_base_/distill/roi_losses.py']

model = dict(distiller=_base_.kd_distiller)
