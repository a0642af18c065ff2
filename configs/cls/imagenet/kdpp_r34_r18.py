# KD++ ResNet-34 -> ResNet-18 on ImageNet-1k: CE 1 + KD 2.5 (T=1, 5 warm-up epochs) + ND 1.0 (docs/methods.md 1(d)).
# Both embeddings are 512-d, so no projector.
_base_ = ['../_base_/distill/imagenet_kdpp.py']

teacher_ckpt = 'work_dirs/r34_teacher/epoch_100.pth'  # train it with configs/cls/imagenet/r34_teacher.py

_resnet = dict(type='mmdet.ResNet', num_stages=4, out_indices=(3, ), frozen_stages=-1,
               norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False, style='pytorch')
model = dict(
    architecture=dict(backbone=dict(depth=18, **_resnet), head=dict(in_channels=512)),
    teacher=dict(backbone=dict(depth=34, **_resnet), head=dict(in_channels=512)),
    teacher_ckpt=teacher_ckpt,
    class_means=dict(feat_dim=512),
    distiller=dict(distill_losses=dict(loss_kd=dict(loss_weight=2.5), loss_nd=dict(loss_weight=1.0))))
del _resnet
