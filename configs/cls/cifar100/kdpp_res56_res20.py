# KD++ resnet56 -> resnet20 on CIFAR-100: CE 1 + KD 1.0 (T=4) + ND 2.0 (docs/methods.md 1(d)).

_base_ = ['../_base_/distill/cifar100_kdpp.py']

teacher_ckpt = 'work_dirs/res56_teacher/epoch_240.pth'  # from configs/cls/cifar100/res56_teacher.py

model = dict(
    architecture=dict(backbone=dict(type='CIFARResNet', arch='resnet20'), head=dict(in_channels=64)),
    teacher=dict(backbone=dict(type='CIFARResNet', arch='resnet56'), head=dict(in_channels=64)),
    teacher_ckpt=teacher_ckpt,
    class_means=dict(feat_dim=64),
    distiller=dict(
        distill_losses=dict(loss_kd=dict(loss_weight=1.0), loss_nd=dict(loss_weight=2.0))))
