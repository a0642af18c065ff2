# DKD++ ResNet-50 -> MobileNetV2 on CIFAR-100: CE 1 + DKD (alpha 0.5, beta 8.0, T=4) + ND 1.0 (docs/methods.md 1(d)). lr
# 0.02 for this light student (KD++ examples).
# The student's embedding goes through EmbeddingProjector (BN -> Dropout(0.5) -> Linear) to the teacher's width for
# the feature loss only.

_base_ = ['../_base_/distill/cifar100_dkdpp.py']

teacher_ckpt = 'work_dirs/res50_teacher/epoch_240.pth'  # from configs/cls/cifar100/res50_teacher.py

model = dict(
    architecture=dict(backbone=dict(type='CIFARMobileNetV2', widen_factor=0.5), head=dict(in_channels=1280)),
    teacher=dict(backbone=dict(type='CIFARResNet', arch='resnet50'), head=dict(in_channels=2048)),
    teacher_ckpt=teacher_ckpt,
    class_means=dict(feat_dim=2048),
    distiller=dict(
        connectors=dict(proj=dict(type='EmbeddingProjector', in_channels=1280, out_channels=2048)),
        distill_losses=dict(loss_dkd=dict(alpha=0.5, beta=8.0), loss_nd=dict(loss_weight=1.0)),
        loss_forward_mappings=dict(loss_nd=dict(student_feat=dict(connector='proj')))))
optim_wrapper = dict(optimizer=dict(lr=0.02))
