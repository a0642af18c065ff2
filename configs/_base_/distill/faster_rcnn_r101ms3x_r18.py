# The paper's setup (faster_rcnn_r101ms3x_r50.py: R101-FPN ms-3x teacher, 1x multi-scale 640-800 student) with the
# R18-FPN student (the same delta as faster_rcnn_r101_r18.py).
_base_ = './faster_rcnn_r101ms3x_r50.py'

model = dict(
    architecture=dict(
        backbone=dict(depth=18, init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet18')),
        neck=dict(in_channels=[64, 128, 256, 512])))
