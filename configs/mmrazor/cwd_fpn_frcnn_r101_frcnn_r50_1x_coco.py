# mmrazor's CWD (ChannelWiseDivergence on the 5 FPN levels), Faster R-CNN R101-FPN 2x -> R50-FPN 1x, run by
# mmkd.FpnTeacherDistill (docs/mmrazor_configs.md). mmrazor's file names mmdet 2.x configs
# (faster_rcnn_r50_fpn_1x_coco.py) and a teacher_ckpt without its URL: both fixed here.
# Train: tools/dist_train.sh configs/mmrazor/cwd_fpn_frcnn_r101_frcnn_r50_1x_coco.py 8
_base_ = ['mmrazor::distill/mmdet/cwd/cwd_fpn_frcnn_r101_frcnn_r50_1x_coco.py']

teacher_ckpt = 'https://download.openmmlab.com/mmdetection/v2.0/faster_rcnn/faster_rcnn_r101_fpn_2x_coco/faster_rcnn_r101_fpn_2x_coco_bbox_mAP-0.398_20200504_210455-1d2dac9c.pth'  # noqa: E501
model = dict(
    type='mmkd.FpnTeacherDistill',
    architecture=dict(cfg_path='mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'),
    teacher=dict(cfg_path='mmdet::faster_rcnn/faster-rcnn_r101_fpn_2x_coco.py'),
    teacher_ckpt=teacher_ckpt)
