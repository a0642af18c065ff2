# [PROPOSAL] NC-inspired distillation resnet56 -> resnet20 on CIFAR-100 (see _base_/distill/cifar100_nc.py).

_base_ = ['../_base_/distill/cifar100_nc.py']

teacher_ckpt = 'work_dirs/res56_teacher/epoch_240.pth'  # from configs/cls/cifar100/res56_teacher.py

model = dict(
    architecture=dict(backbone=dict(type='CIFARResNet', arch='resnet20'), head=dict(in_channels=64)),
    teacher=dict(backbone=dict(type='CIFARResNet', arch='resnet56'), head=dict(in_channels=64)),
    teacher_ckpt=teacher_ckpt,
    class_means=dict(feat_dim=64),
    distiller=dict(
        distill_losses=dict(loss_nc=dict(loss_weight=1.0))))
