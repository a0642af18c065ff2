# RTMDet-l -> RTMDet-s, PKD on the three neck outputs [PROPOSAL: no author config for RTMDet]: the student's
# 128-channel maps through a 1x1 convolution to the teacher's 256 (trained with the student, dropped on export),
# weight 10 per level (mmrazor's one-stage PKD weight). mmyolo's RTMDet distillation (CWD on normalised neck
# outputs) reports s 44.6 -> 45.7 from an RTMDet-m teacher.
_base_ = ['./_base_/distill/rtmdet_l_s.py']

_neck = dict(neck=dict(type='ModuleOutputs', source='neck'))
model = dict(distiller=dict(
    student_recorders=_neck,
    teacher_recorders=_neck,
    connectors={f'proj{i}': dict(type='ConvModuleConnector', in_channel=128, out_channel=256, kernel_size=1,
                                 stride=1, padding=0, norm_cfg=None, act_cfg=None) for i in range(3)},
    distill_losses={f'loss_pkd_fpn{i}': dict(type='PKDLoss', loss_weight=10) for i in range(3)},
    loss_forward_mappings={
        f'loss_pkd_fpn{i}': dict(
            preds_S=dict(recorder='neck', from_student=True, data_idx=i, connector=f'proj{i}'),
            preds_T=dict(recorder='neck', from_student=False, data_idx=i))
        for i in range(3)}))
