# resnet32x4 teacher on CUB-200-2011 (224 px, batch 64, lr 0.01, 240 epochs), as iCD's CUB teachers. Its last
# checkpoint, work_dirs/res32x4_teacher_cub200/epoch_240.pth, is the teacher_ckpt of the CUB iCD configs.
_base_ = [
    '../_base_/models/cifar100_classifier.py', '../_base_/datasets/cub200.py',
    '../_base_/schedules/cifar100_240e.py', '../_base_/default_runtime.py'
]
model = dict(
    data_preprocessor=dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=True),
    backbone=dict(type='CIFARResNet', arch='resnet32x4'),
    head=dict(num_classes=200, in_channels=256))
optim_wrapper = dict(optimizer=dict(lr=0.01, nesterov=False))
auto_scale_lr = dict(base_batch_size=64)
