# The classification distillation methods as ConfigurableDistiller settings, one variable per method (as
# configs/_base_/distill/roi_losses.py for detection). A method file picks one:
# model = dict(..., distiller=_base_.kdpp_distiller). ClsDistill adds the recorders feat (neck), logits (head.fc)
# and, for the student, labels (head.loss_module); the weights and KD temperatures here are the CIFAR-100 defaults,
# which dataset files and pair configs override.

_logits = dict(
    preds_S=dict(recorder='logits', from_student=True),
    preds_T=dict(recorder='logits', from_student=False))
_labels = dict(recorder='labels', from_student=True, data_idx=1)
_nd = dict(type='NDLoss', loss_weight=1.0)
_nd_mapping = dict(
    student_feat=dict(recorder='feat', from_student=True),
    teacher_feat=dict(recorder='feat', from_student=False),
    labels=_labels)

# KD++: KD (T=4) + ND on the penultimate feature against the teacher's class means.
kdpp_distiller = dict(
    distill_losses=dict(
        loss_kd=dict(type='KLDivergence', tau=4, loss_weight=1.0, reduction='batchmean'),
        loss_nd=_nd),
    loss_forward_mappings=dict(loss_kd=_logits, loss_nd=_nd_mapping))

# DKD++: mmrazor's DKD (T=4, alpha 1, beta 8) + ND.
dkdpp_distiller = dict(
    distill_losses=dict(
        loss_dkd=dict(type='DKDLoss', tau=4, alpha=1.0, beta=8.0, reduction='batchmean', loss_weight=1.0),
        loss_nd=_nd),
    loss_forward_mappings=dict(loss_dkd=dict(_logits, gt_labels=_labels), loss_nd=_nd_mapping))

# [PROPOSAL] NC-inspired: NCLoss (prototype contrast + alignment + Gram transfer against the teacher's class means).
nc_distiller = dict(
    distill_losses=dict(
        loss_nc=dict(type='NCLoss', loss_weight=1.0, contrast_weight=1.0, align_weight=1.0, nc2_weight=1.0,
                     nc3_weight=0.0, tau=0.1)),
    loss_forward_mappings=dict(
        loss_nc=dict(student_feat=dict(recorder='feat', from_student=True), labels=_labels)))

# iCD + KD as released (CD-SDD-KD): SDD's multi-region KD (T=4, weight 0.9, complementary regions x2) + iCD (gamma
# 2.0, tau 2), both on the 1x1/2x2/4x4 local logits recorded from the heads' local_logits (the heads need
# local_scales=(1, 2, 4)); SDD-KD also reads the labels (its consistent/complementary weights).
_local_logits = dict(
    student_logits=dict(recorder='local_logits', from_student=True),
    teacher_logits=dict(recorder='local_logits', from_student=False))
_local_recorders = dict(local_logits=dict(type='ModuleOutputs', source='head.local_logits'))
_icd = dict(type='ICDLoss', loss_weight=2.0, scales=(1, 2, 4), tau=2.0)
icd_distiller = dict(
    student_recorders=_local_recorders,
    teacher_recorders=_local_recorders,
    distill_losses=dict(
        loss_kd=dict(type='SDDKDLoss', tau=4, loss_weight=0.9, complementary_weight=2.0),
        loss_icd=_icd),
    loss_forward_mappings=dict(loss_kd=dict(_local_logits, gt_labels=_labels), loss_icd=_local_logits))

# iCD + plain KD: iCD with plain KD (T=4, weight 0.9) on the global logits instead of SDD's multi-region KD -- not
# the released KD term (mmkd's first iCD recipe, kept for the rows reported with it).
icd_plainkd_distiller = dict(
    student_recorders=_local_recorders,
    teacher_recorders=_local_recorders,
    distill_losses=dict(
        loss_kd=dict(type='KLDivergence', tau=4, loss_weight=0.9, reduction='batchmean'),
        loss_icd=_icd),
    loss_forward_mappings=dict(loss_kd=_logits, loss_icd=_local_logits))

del _logits, _labels, _nd, _nd_mapping, _local_logits, _local_recorders, _icd  # building blocks only
