# [PROPOSAL] NC-inspired distillation resnet32x4 -> resnet8x4 on CIFAR-100 (see _base_/distill/cifar100_nc.py).

_base_ = ['../_base_/distill/cifar100_nc.py']

teacher_ckpt = 'work_dirs/res32x4_teacher/epoch_240.pth'  # from configs/cls/cifar100/res32x4_teacher.py

model = dict(
    architecture=dict(backbone=dict(type='CIFARResNet', arch='resnet8x4'), head=dict(in_channels=256)),
    teacher=dict(backbone=dict(type='CIFARResNet', arch='resnet32x4'), head=dict(in_channels=256)),
    teacher_ckpt=teacher_ckpt,
    class_means=dict(feat_dim=256),
    distiller=dict(
        distill_losses=dict(loss_nc=dict(loss_weight=1.0))))
