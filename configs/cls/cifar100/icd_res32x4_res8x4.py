# iCD + KD (as released) resnet32x4 -> resnet8x4 on CIFAR-100: 0.1 CE + 0.9 SDD-KD (T=4) + 2.0 iCD (see
# _base_/distill/cifar100_icd.py). lr 0.05 (mdistiller default for ResNet/WRN students; iCD's released configs use
# 0.01 for every pair).

_base_ = ['../_base_/distill/cifar100_icd.py']

teacher_ckpt = 'work_dirs/res32x4_teacher/epoch_240.pth'  # from configs/cls/cifar100/res32x4_teacher.py

model = dict(
    architecture=dict(backbone=dict(type='CIFARResNet', arch='resnet8x4'), head=dict(in_channels=256)),
    teacher=dict(backbone=dict(type='CIFARResNet', arch='resnet32x4'), head=dict(in_channels=256)),
    teacher_ckpt=teacher_ckpt,
    distiller=dict(
        distill_losses=dict(loss_kd=dict(loss_weight=0.9), loss_icd=dict(loss_weight=2.0))))
optim_wrapper = dict(optimizer=dict(lr=0.05))
