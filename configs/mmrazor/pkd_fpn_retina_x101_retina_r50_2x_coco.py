# mmrazor's PKD (PKDLoss on 4 FPN levels), RetinaNet X101-64x4d-FPN 1x -> R50-FPN 2x,
# run by mmkd.FpnTeacherDistill (docs/mmrazor_configs.md).
# Train: tools/dist_train.sh configs/mmrazor/pkd_fpn_retina_x101_retina_r50_2x_coco.py 8
_base_ = ['mmrazor::distill/mmdet/pkd/pkd_fpn_retina_x101_retina_r50_2x_coco.py']

model = dict(type='mmkd.FpnTeacherDistill')
