# iCD + SDD-KD (as released) resnet32x4 -> MobileNetV2 on CUB-200-2011 (see _base_/distill/cub200_icd.py).

_base_ = ['../_base_/distill/cub200_icd.py']

teacher_ckpt = 'work_dirs/res32x4_teacher_cub200/epoch_240.pth'  # from configs/cls/cub200/res32x4_teacher_cub200.py

model = dict(
    architecture=dict(backbone=dict(type='CIFARMobileNetV2', widen_factor=0.5), head=dict(in_channels=1280)),
    teacher=dict(backbone=dict(type='CIFARResNet', arch='resnet32x4'), head=dict(in_channels=256)),
    teacher_ckpt=teacher_ckpt,
    distiller=dict(
        distill_losses=dict(loss_kd=dict(loss_weight=0.9), loss_icd=dict(loss_weight=2.0))))
