# mmrazor's PKD (PKDLoss on 4 FPN levels), RepPoints X101-FPN (DCN c3-c5, GN) -> RepPoints R50-FPN (GN) 2x,
# run by mmkd.FpnTeacherDistill (docs/mmrazor_configs.md).
# Train: tools/dist_train.sh configs/mmrazor/pkd_fpn_reppoints_x101-dcn_reppoints_r50_2x_coco.py 8
_base_ = ['mmrazor::distill/mmdet/pkd/pkd_fpn_reppoints_x101-dcn_reppoints_r50_2x_coco.py']

model = dict(type='mmkd.FpnTeacherDistill')
