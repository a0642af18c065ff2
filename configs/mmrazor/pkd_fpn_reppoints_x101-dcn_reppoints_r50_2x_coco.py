# mmrazor's PKD (PKDLoss on 4 FPN levels), RepPoints X101-FPN (DCN c3-c5, GN) -> RepPoints R50-FPN (GN) 2x,
# run by mmkd.FpnTeacherDistill (docs/mmrazor_configs.md). The teacher keeps its BatchNorms (teacher_fuse_conv_bn):
# the folding is traced on a 64x64 image, where the teacher's stride-32 stage is 2x2, smaller than its 3x3
# deformable kernels, which mmcv refuses.
# Train: tools/dist_train.sh configs/mmrazor/pkd_fpn_reppoints_x101-dcn_reppoints_r50_2x_coco.py 8
_base_ = ['mmrazor::distill/mmdet/pkd/pkd_fpn_reppoints_x101-dcn_reppoints_r50_2x_coco.py']

model = dict(type='mmkd.FpnTeacherDistill', teacher_fuse_conv_bn=False)
