# mmrazor's PKD (PKDLoss on 4 FPN levels), Faster R-CNN R101-FPN 2x -> R50-FPN 2x,
# run by mmkd.FpnTeacherDistill (docs/mmrazor_configs.md).
# Train: tools/dist_train.sh configs/mmrazor/pkd_fpn_faster-rcnn_r101_faster-rcnn_r50_2x_coco.py 8
_base_ = ['mmrazor::distill/mmdet/pkd/pkd_fpn_faster-rcnn_r101_faster-rcnn_r50_2x_coco.py']

model = dict(type='mmkd.FpnTeacherDistill')
