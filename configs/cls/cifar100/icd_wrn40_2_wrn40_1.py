# iCD + KD (as released) WRN-40-2 -> WRN-40-1 on CIFAR-100: 0.1 CE + 0.9 SDD-KD (T=4) + 2.0 iCD (see
# _base_/distill/cifar100_icd.py). lr 0.05 (mdistiller default for ResNet/WRN students; iCD's released configs use
# 0.01 for every pair).

_base_ = ['../_base_/distill/cifar100_icd.py']

teacher_ckpt = 'work_dirs/wrn40_2_teacher/epoch_240.pth'  # from configs/cls/cifar100/wrn40_2_teacher.py

model = dict(
    architecture=dict(backbone=dict(type='CIFARWideResNet', depth=40, widen_factor=1), head=dict(in_channels=64)),
    teacher=dict(backbone=dict(type='CIFARWideResNet', depth=40, widen_factor=2), head=dict(in_channels=128)),
    teacher_ckpt=teacher_ckpt,
    distiller=dict(
        distill_losses=dict(loss_kd=dict(loss_weight=0.9), loss_icd=dict(loss_weight=2.0))))
optim_wrapper = dict(optimizer=dict(lr=0.05))
