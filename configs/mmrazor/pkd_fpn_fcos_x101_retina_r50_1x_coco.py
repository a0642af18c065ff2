# mmrazor's PKD (PKDLoss on 4 FPN levels), FCOS X101-64x4d-FPN (GN head, ms-640-800 2x) -> RetinaNet R50-FPN 1x,
# run by mmkd.FpnTeacherDistill (docs/mmrazor_configs.md).
# Train: tools/dist_train.sh configs/mmrazor/pkd_fpn_fcos_x101_retina_r50_1x_coco.py 8
_base_ = ['mmrazor::distill/mmdet/pkd/pkd_fpn_fcos_x101_retina_r50_1x_coco.py']

model = dict(type='mmkd.FpnTeacherDistill')
