# KD++ resnet32x4 -> resnet8x4 on CIFAR-100: CE 1 + KD 3.5 (T=4) + ND 2.0 (docs/methods.md 1(d)).

_base_ = ['../_base_/distill/cifar100_kdpp.py']

teacher_ckpt = 'work_dirs/res32x4_teacher/epoch_240.pth'  # from configs/cls/cifar100/res32x4_teacher.py

model = dict(
    architecture=dict(backbone=dict(type='CIFARResNet', arch='resnet8x4'), head=dict(in_channels=256)),
    teacher=dict(backbone=dict(type='CIFARResNet', arch='resnet32x4'), head=dict(in_channels=256)),
    teacher_ckpt=teacher_ckpt,
    class_means=dict(feat_dim=256),
    distiller=dict(
        distill_losses=dict(loss_kd=dict(loss_weight=3.5), loss_nd=dict(loss_weight=2.0))))
