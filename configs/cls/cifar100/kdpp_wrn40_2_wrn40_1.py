# KD++ WRN-40-2 -> WRN-40-1 on CIFAR-100: CE 1 + KD 1.0 (T=4) + ND 1.5 (docs/methods.md 1(d)).
# The student's embedding goes through EmbeddingProjector (BN -> Dropout(0.5) -> Linear) to the teacher's width for
# the feature loss only.

_base_ = ['../_base_/distill/cifar100_kdpp.py']

teacher_ckpt = 'work_dirs/wrn40_2_teacher/epoch_240.pth'  # from configs/cls/cifar100/wrn40_2_teacher.py

model = dict(
    architecture=dict(backbone=dict(type='CIFARWideResNet', depth=40, widen_factor=1), head=dict(in_channels=64)),
    teacher=dict(backbone=dict(type='CIFARWideResNet', depth=40, widen_factor=2), head=dict(in_channels=128)),
    teacher_ckpt=teacher_ckpt,
    class_means=dict(feat_dim=128),
    distiller=dict(
        connectors=dict(proj=dict(type='EmbeddingProjector', in_channels=64, out_channels=128)),
        distill_losses=dict(loss_kd=dict(loss_weight=1.0), loss_nd=dict(loss_weight=1.5)),
        loss_forward_mappings=dict(loss_nd=dict(student_feat=dict(connector='proj')))))
