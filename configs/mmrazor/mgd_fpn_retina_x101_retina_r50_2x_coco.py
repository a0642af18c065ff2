# mmrazor's MGD (MGDConnector + MGDLoss on the 5 FPN levels), RetinaNet X101-64x4d-FPN 1x -> R50-FPN 2x, run by
# mmkd.FpnTeacherDistill (docs/mmrazor_configs.md). As in mmrazor's file, the student's neck and head start from
# the teacher's checkpoint.
# Train: tools/dist_train.sh configs/mmrazor/mgd_fpn_retina_x101_retina_r50_2x_coco.py 8
_base_ = ['mmrazor::distill/mmdet/mgd/mgd_fpn_retina_x101_retina_r50_2x_coco.py']

model = dict(type='mmkd.FpnTeacherDistill')
