# The detection distillation methods as ConfigurableDistiller settings, one variable per method. They read the
# RoI tensors mmkd.RoIDistill records on the student's sampled RoIs (roi_feat, roi_logits, roi_targets, rois).
# A top-level config picks one: model = dict(distiller=_base_.kdpp_distiller, class_means=_base_.class_means)

# Teacher class means of the RoI feature, for every class plus background (shape taken from the teacher).
class_means = dict(momentum=None)

_kd = dict(type='KLDivergence', tau=1, loss_weight=1.0)  # mmrazor's KD, 'batchmean' over RoIs
_kd_mapping = dict(
    preds_S=dict(recorder='roi_logits', from_student=True),
    preds_T=dict(recorder='roi_logits', from_student=False))
_labels = dict(recorder='roi_targets', from_student=True, data_idx=0)
_label_weights = dict(recorder='roi_targets', from_student=True, data_idx=1)
_student_feat = dict(recorder='roi_feat', from_student=True, data_idx=0)

# Plain KD on the 81-way RoI class logits (the comparison point).
kd_distiller = dict(
    type='ConfigurableDistiller',
    distill_losses=dict(loss_kd=_kd),
    loss_forward_mappings=dict(loss_kd=_kd_mapping))

# KD++ (ND paper, detection): ND on the RoI feature, background RoIs included, + KD with T = 1.
kdpp_distiller = dict(
    type='ConfigurableDistiller',
    distill_losses=dict(loss_kd=_kd, loss_nd=dict(type='NDLoss', loss_weight=1.0)),
    loss_forward_mappings=dict(
        loss_kd=_kd_mapping,
        loss_nd=dict(
            student_feat=_student_feat,
            teacher_feat=dict(recorder='roi_feat', from_student=False, data_idx=0),
            labels=_labels,
            label_weights=_label_weights)))

# [PROPOSAL] NC-inspired (NCKD has no public code): NC1 prototype contrast + alignment and NC2 Gram transfer
# on the RoI feature against the teacher's class means (background excluded from NC2), + KD.
nc_distiller = dict(
    type='ConfigurableDistiller',
    distill_losses=dict(
        loss_kd=_kd,
        loss_nc=dict(type='NCLoss', loss_weight=1.0, contrast_weight=1.0, align_weight=1.0, nc2_weight=1.0,
                     ignore_index=-1)),  # -1: background, the last class
    loss_forward_mappings=dict(
        loss_kd=_kd_mapping,
        loss_nc=dict(student_feat=_student_feat, labels=_labels, label_weights=_label_weights)))

# [PROPOSAL] iCD on RoI logits (iCD is classification-only): per image, the Gram of L2-normalised RoI logit
# vectors, row-softmax at tau = 2, KL(teacher || student); + KD (the paper's iCD+KD pairing).
icd_distiller = dict(
    type='ConfigurableDistiller',
    distill_losses=dict(loss_kd=_kd, loss_icd=dict(type='ICDRoILoss', loss_weight=1.0, tau=2.0)),
    loss_forward_mappings=dict(
        loss_kd=_kd_mapping,
        loss_icd=dict(
            student_logits=dict(recorder='roi_logits', from_student=True),
            teacher_logits=dict(recorder='roi_logits', from_student=False),
            rois=dict(recorder='rois', from_student=True, data_idx=1))))


# ReviewKD (Chen et al., CVPR 2021) on the FPN, as the ND paper's Detection/ code runs it: the student's five FPN
# outputs (P2-P6) go through the ABF connector (attention-based fusion, deepest level first; 256-d fused maps) to
# the teacher's width, and HCL compares them with the teacher's raw FPN outputs, level by level (summed). The
# connector is part of the distiller: trained by the default optimizer, dropped by convert_kd_ckpt_to_student.py.
# Widths are those of mmdet's FPN (256); narrower necks set connectors.abf.{in,out,mid}_channels.
_neck_mapping = dict(
    student_feats=dict(recorder='neck', from_student=True, connector='abf'),
    teacher_feats=dict(recorder='neck', from_student=False))
reviewkd_distiller = dict(
    type='ConfigurableDistiller',
    student_recorders=dict(neck=dict(type='ModuleOutputs', source='neck')),
    teacher_recorders=dict(neck=dict(type='ModuleOutputs', source='neck')),
    connectors=dict(abf=dict(type='mmkd.ABFConnector', in_channels=256, out_channels=256, mid_channels=256,
                             num_levels=5)),
    distill_losses=dict(loss_hcl=dict(type='mmkd.HCLLoss', loss_weight=1.0)),
    loss_forward_mappings=dict(loss_hcl=_neck_mapping))

# ReviewKD++ (ND paper, detection): ReviewKD's HCL on the FPN + ND on the RoI feature (background RoIs included);
# no logit KD. ND weight 1.0: the released code builds ReviewKD++'s ND loss from the KD++ branch's ND_WEIGHT
# (default 1.0), so the 1.5 its R18/MV2 yamls set under NDReviewKD is never read.
reviewkdpp_distiller = dict(
    reviewkd_distiller,
    distill_losses=dict(reviewkd_distiller['distill_losses'], loss_nd=dict(type='NDLoss', loss_weight=1.0)),
    loss_forward_mappings=dict(
        loss_hcl=_neck_mapping,
        loss_nd=kdpp_distiller['loss_forward_mappings']['loss_nd']))


def _without_kd(distiller: dict) -> dict:
    """The same method without the RoI-logit KD term (the study's "method alone" rows)."""
    return dict(type='ConfigurableDistiller',
                distill_losses={k: v for k, v in distiller['distill_losses'].items() if k != 'loss_kd'},
                loss_forward_mappings={k: v for k, v in distiller['loss_forward_mappings'].items() if k != 'loss_kd'})


# Each method alone, without KD: ND, NC [PROPOSAL], iCD-RoI [PROPOSAL].
nd_distiller = _without_kd(kdpp_distiller)
nc_nokd_distiller = _without_kd(nc_distiller)
icd_nokd_distiller = _without_kd(icd_distiller)

del _kd, _kd_mapping, _labels, _label_weights, _student_feat, _without_kd, _neck_mapping  # building blocks only
