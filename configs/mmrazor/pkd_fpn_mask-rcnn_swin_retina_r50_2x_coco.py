# mmrazor's PKD (PKDLoss on 4 FPN levels), Mask R-CNN Swin-S (ms-crop 3x) -> RetinaNet R50-FPN 2x,
# run by mmkd.FpnTeacherDistill (docs/mmrazor_configs.md).
# Train: tools/dist_train.sh configs/mmrazor/pkd_fpn_mask-rcnn_swin_retina_r50_2x_coco.py 8
_base_ = ['mmrazor::distill/mmdet/pkd/pkd_fpn_mask-rcnn_swin_retina_r50_2x_coco.py']

model = dict(type='mmkd.FpnTeacherDistill')
