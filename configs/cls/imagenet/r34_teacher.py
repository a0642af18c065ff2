# ResNet-34 teacher on ImageNet-1k (100 epochs, 8 x 64 images, lr 0.2). Its last checkpoint,
# work_dirs/r34_teacher/epoch_100.pth, is the teacher_ckpt of kdpp_r34_r18.py. To start from the torchvision
# weights instead (the KD++ authors' teachers), add
# backbone=dict(init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet34')) and fine-tune the head.
_base_ = [
    '../_base_/models/imagenet_classifier.py', '../_base_/datasets/imagenet.py',
    '../_base_/schedules/imagenet_100e.py', '../_base_/default_runtime.py'
]
model = dict(backbone=dict(depth=34), head=dict(in_channels=512))
