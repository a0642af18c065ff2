# KD++ resnet32x4 -> ShuffleNetV1 on CIFAR-100: CE 1 + KD 2.5 (T=4) + ND 1.5 (docs/methods.md 1(d)).
# lr 0.02 for this light student (KD++ examples).
# The student's embedding goes through EmbeddingProjector (BN -> Dropout(0.5) -> Linear) to the teacher's width for
# the feature loss only.

_base_ = ['../_base_/distill/cifar100_kdpp.py']

teacher_ckpt = 'work_dirs/res32x4_teacher/epoch_240.pth'  # from configs/cls/cifar100/res32x4_teacher.py

model = dict(
    architecture=dict(backbone=dict(type='CIFARShuffleNetV1'), head=dict(in_channels=960)),
    teacher=dict(backbone=dict(type='CIFARResNet', arch='resnet32x4'), head=dict(in_channels=256)),
    teacher_ckpt=teacher_ckpt,
    class_means=dict(feat_dim=256),
    distiller=dict(
        connectors=dict(proj=dict(type='EmbeddingProjector', in_channels=960, out_channels=256)),
        distill_losses=dict(loss_kd=dict(loss_weight=2.5), loss_nd=dict(loss_weight=1.5)),
        loss_forward_mappings=dict(loss_nd=dict(student_feat=dict(connector='proj')))))
optim_wrapper = dict(optimizer=dict(lr=0.02))
