# mmrazor's CWD on the 5 FPN levels, RetinaNet R101-FPN 2x -> R50-FPN 1x, run by mmkd.FpnTeacherDistill
# (docs/mmrazor_configs.md). mmrazor's file inherits the Faster R-CNN R101 teacher_ckpt of its base: loaded after
# the RetinaNet weights (`pretrained=True`), it replaces the teacher's backbone and the FPN weights of matching
# shape with Faster R-CNN's, with a warning. Here the teacher's own checkpoint, loaded once and checked.
# Train: tools/dist_train.sh configs/mmrazor/cwd_fpn_retina_r101_retina_r50_1x_coco.py 8
_base_ = ['mmrazor::distill/mmdet/cwd/cwd_fpn_retina_r101_retina_r50_1x_coco.py']

teacher_ckpt = 'https://download.openmmlab.com/mmdetection/v2.0/retinanet/retinanet_r101_fpn_2x_coco/retinanet_r101_fpn_2x_coco_20200131-5560aee8.pth'  # noqa: E501
model = dict(type='mmkd.FpnTeacherDistill', teacher=dict(pretrained=False), teacher_ckpt=teacher_ckpt)
