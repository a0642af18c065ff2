# mmrazor's CWD, GFL R101-FPN ms-2x -> GFL R50-FPN 1x, run by mmkd.FpnTeacherDistill (docs/mmrazor_configs.md).
# Despite the name, the distiller is its base's: CWD on the 5 FPN levels. The teacher's weights come from
# teacher_ckpt alone (mmrazor also loads them through `pretrained=True`, downloading them twice).
# Train: tools/dist_train.sh configs/mmrazor/cwd_cls_head_gfl_r101_fpn_gfl_r50_fpn_1x_coco.py 8
_base_ = ['mmrazor::distill/mmdet/cwd/cwd_cls_head_gfl_r101_fpn_gfl_r50_fpn_1x_coco.py']

model = dict(type='mmkd.FpnTeacherDistill', teacher=dict(pretrained=False))
