# DKD++ resnet32x4 -> resnet8x4 on CIFAR-100: CE 1 + DKD (alpha 2.0, beta 8.0, T=4) + ND 0.5 (docs/methods.md 1(d)).

_base_ = ['../_base_/distill/cifar100_dkdpp.py']

teacher_ckpt = 'work_dirs/res32x4_teacher/epoch_240.pth'  # from configs/cls/cifar100/res32x4_teacher.py

model = dict(
    architecture=dict(backbone=dict(type='CIFARResNet', arch='resnet8x4'), head=dict(in_channels=256)),
    teacher=dict(backbone=dict(type='CIFARResNet', arch='resnet32x4'), head=dict(in_channels=256)),
    teacher_ckpt=teacher_ckpt,
    class_means=dict(feat_dim=256),
    distiller=dict(
        distill_losses=dict(loss_dkd=dict(alpha=2.0, beta=8.0), loss_nd=dict(loss_weight=0.5))))
