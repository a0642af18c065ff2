# The dense-detector distillation methods as mmkd.DenseDistill settings, one variable per method (as
# roi_losses.py for the two-stage ones). A top-level config picks one:
#   model = dict(distiller=_base_.pkd_distiller)                 # FPN feature losses, through the distiller
#   model = dict(crosskd=_base_.crosskd)                         # head losses built into DenseDistill
# The FPN methods read ModuleOutputs recorders of both necks (five levels of 256 channels for the mmdet
# one-stage configs; data_idx = level), FGD also the records gt_bboxes and img_shapes DenseDistill provides.

_neck = dict(neck=dict(type='ModuleOutputs', source='neck'))


def _levels(loss: dict, levels: range, student: str = 'neck', teacher: str = 'neck', **extra) -> dict:
    """One loss per FPN level (its own layers, if any) reading level i of both recorders."""
    return dict(
        distill_losses={f'loss_{loss["type"].split(".")[-1].lower()}_fpn{i}': loss for i in levels},
        loss_forward_mappings={
            f'loss_{loss["type"].split(".")[-1].lower()}_fpn{i}': dict(
                preds_S=dict(recorder=student, from_student=True, data_idx=i),
                preds_T=dict(recorder=teacher, from_student=False, data_idx=i), **extra)
            for i in levels})


# PKD (Cao et al., NeurIPS 2022), mmrazor's one-stage setting (pkd_fpn_retina_x101_retina_r50_2x_coco):
# Pearson-normalised MSE on FPN levels 0-3 (P6/P7 left out, as all of mmrazor's PKD configs), weight 10.
pkd_distiller = dict(type='ConfigurableDistiller', student_recorders=_neck, teacher_recorders=_neck,
                     **_levels(dict(type='PKDLoss', loss_weight=10), range(4)))

# CWD (Shu et al., ICCV 2021) as mmrazor 0.x's GFL config that gave the reported 41.9 (40.2 -> 41.9 with the
# GFL R101 ms-2x teacher): channel-wise KL (tau 1) of the 80-class logit maps of gfl_cls, per level, weight 5
# each. (mmrazor 1.0's cwd_cls_head_gfl config records the neck instead and reports no number.)
_gfl_cls = dict(type='ModuleOutputs', source='bbox_head.gfl_cls')
cwd_distiller = dict(
    type='ConfigurableDistiller',
    student_recorders=dict(gfl_cls=_gfl_cls),
    teacher_recorders=dict(gfl_cls=_gfl_cls),
    distill_losses={f'loss_cwd_cls{i}': dict(type='ChannelWiseDivergence', tau=1, loss_weight=5) for i in range(5)},
    loss_forward_mappings={
        f'loss_cwd_cls{i}': dict(preds_S=dict(recorder='gfl_cls', from_student=True, record_idx=i),
                                 preds_T=dict(recorder='gfl_cls', from_student=False, record_idx=i))
        for i in range(5)})

# FGD (Yang et al., CVPR 2022), the authors' one-stage setting (RetinaNet, GFL): one FGDLoss per level on the
# raw output of neck.fpn_convs.{i}.conv, levels 0-4, T 0.5, alpha 1e-3, beta 5e-4, gamma 5e-4, lambda 5e-6, masks
# from the unpadded img_shape (the authors'). Their configs also start the student's neck and head from the
# teacher's (init_student=True; the configs set the algorithm's student_init_from_teacher), clip gradients at 35.


def _fgd(channels: int) -> dict:
    rec = {f'fpn{i}': dict(type='ModuleOutputs', source=f'neck.fpn_convs.{i}.conv') for i in range(5)}
    loss = dict(type='FGDLoss', student_channels=channels, teacher_channels=channels, temp=0.5, alpha_fgd=1e-3,
                beta_fgd=5e-4, gamma_fgd=5e-4, lambda_fgd=5e-6)
    return dict(
        type='ConfigurableDistiller',
        student_recorders=rec,
        teacher_recorders=rec,
        distill_losses={f'loss_fgd_fpn{i}': loss for i in range(5)},
        loss_forward_mappings={
            f'loss_fgd_fpn{i}': dict(
                preds_S=dict(recorder=f'fpn{i}', from_student=True),
                preds_T=dict(recorder=f'fpn{i}', from_student=False),
                gt_bboxes=dict(recorder='gt_bboxes', from_student=True),
                img_shapes=dict(recorder='img_shapes', from_student=True))
            for i in range(5)})


fgd_distiller = _fgd(256)
fgd_distiller_c64 = _fgd(64)  # the demo detectors' 64-channel FPN

# CrossKD (Wang et al., CVPR 2024) with the authors' settings for the head (DenseDistill.CROSSKD_DEFAULTS: GFL,
# RetinaNet, ATSS k = 3; FCOS k = 2; RTMDet k = 1 [PROPOSAL]).
crosskd = dict()
# CrossKD + PKD (the authors' crosskd+pkd configs): PKD between the whole necks' outputs (all 5 levels, summed),
# weight 6 for GFL, 2 for RetinaNet.
crosskd_pkd_gfl_distiller = dict(
    type='ConfigurableDistiller', student_recorders=_neck, teacher_recorders=_neck,
    distill_losses=dict(loss_pkd=dict(type='PKDLoss', loss_weight=6.0)),
    loss_forward_mappings=dict(loss_pkd=dict(preds_S=dict(recorder='neck', from_student=True),
                                             preds_T=dict(recorder='neck', from_student=False))))
crosskd_pkd_retina_distiller = dict(
    crosskd_pkd_gfl_distiller, distill_losses=dict(loss_pkd=dict(type='PKDLoss', loss_weight=2.0)))

# LD (Zheng et al., CVPR 2022) as mmdet 3.3's ld configs: KL (T 10, weight 0.25) of the box-side distributions
# of the positive anchors, weighted by the student's max class score (DenseDistill.LD_DEFAULTS).
ld = dict()

# [PROPOSAL] ND (KD++) on the dense head: the output of the last classification conv at the positive priors
# (record pos_feat, student and teacher) toward the teacher's class mean of the assigned label (class means
# [K, C] of positives only; ClassMeansHook fills them with one teacher pass before training).
class_means = dict(momentum=None)
nd_distiller = dict(
    type='ConfigurableDistiller',
    distill_losses=dict(loss_nd=dict(type='NDLoss', loss_weight=1.0)),
    loss_forward_mappings=dict(loss_nd=dict(
        student_feat=dict(recorder='pos_feat', from_student=True),
        teacher_feat=dict(recorder='pos_feat', from_student=False),
        labels=dict(recorder='pos_targets', from_student=True, data_idx=0))))

# [PROPOSAL] iCD on the dense head: per image, the Gram of the positive priors' L2-normalised class-logit vectors,
# row-softmax at tau 2, KL(teacher || student) (mmkd ICDRoILoss, grouped by image).
icd_distiller = dict(
    type='ConfigurableDistiller',
    distill_losses=dict(loss_icd=dict(type='ICDRoILoss', loss_weight=1.0, tau=2.0)),
    loss_forward_mappings=dict(loss_icd=dict(
        student_logits=dict(recorder='pos_logits', from_student=True),
        teacher_logits=dict(recorder='pos_logits', from_student=False),
        rois=dict(recorder='pos_targets', from_student=True, data_idx=1))))

del _neck, _levels, _gfl_cls, _fgd  # building blocks only
