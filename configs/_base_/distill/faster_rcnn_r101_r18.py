# R101-FPN teacher -> R18-FPN student. mmdet 3.3 has no 1x R18 Faster R-CNN: the student is mmdet's R50 model
# with the two keys an R18 needs (the same delta as mmdet's faster-rcnn_r18_fpn_8xb8-amp-lsj-200e_coco.py).
_base_ = './faster_rcnn_r101_r50.py'

model = dict(
    architecture=dict(
        backbone=dict(depth=18, init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet18')),
        neck=dict(in_channels=[64, 128, 256, 512])))
