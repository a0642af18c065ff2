# KD++ ResNet-50 -> MobileNetV2 on ImageNet-1k: CE 1 + KD 4.0 (T=1, 5 warm-up epochs) + ND 1.0. The paper's student
# is MobileNetV1 (same weights, docs/methods.md 1(d)); mmkd reuses mmdet's registered MobileNetV2. Its 1280-d embedding
# goes through EmbeddingProjector (BN -> Dropout(0.5) -> Linear, weights N(0, 0.01) as the ImageNet code) to 2048-d.
_base_ = ['../_base_/distill/imagenet_kdpp.py']

teacher_ckpt = 'work_dirs/r50_teacher/epoch_100.pth'  # train it with configs/cls/imagenet/r50_teacher.py

model = dict(
    architecture=dict(
        backbone=dict(type='mmdet.MobileNetV2', out_indices=(7, ), norm_eval=False), head=dict(in_channels=1280)),
    teacher=dict(
        backbone=dict(type='mmdet.ResNet', depth=50, num_stages=4, out_indices=(3, ), frozen_stages=-1,
                      norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False, style='pytorch'),
        head=dict(in_channels=2048)),
    teacher_ckpt=teacher_ckpt,
    class_means=dict(feat_dim=2048),
    distiller=dict(
        connectors=dict(proj=dict(type='EmbeddingProjector', in_channels=1280, out_channels=2048,
                                  init_cfg=dict(type='Normal', layer='Linear', std=0.01))),
        distill_losses=dict(loss_kd=dict(loss_weight=4.0), loss_nd=dict(loss_weight=1.0)),
        loss_forward_mappings=dict(loss_nd=dict(student_feat=dict(connector='proj')))))
