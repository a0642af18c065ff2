# [PROPOSAL] NC-inspired losses + KD resnet20 -> resnet8: nc_res20_res8_synthetic.py (CE + NCLoss) + KD 1.0 (T=4, as
# kd_res20_res8_synthetic.py), for the CPU classification study (tools/analysis/cls_study.py): its base is KD.
_base_ = ['./nc_res20_res8_synthetic.py']

model = dict(
    distiller=dict(
        distill_losses=dict(loss_kd=dict(type='KLDivergence', tau=4, loss_weight=1.0, reduction='batchmean')),
        loss_forward_mappings=dict(
            loss_kd=dict(
                preds_S=dict(recorder='logits', from_student=True),
                preds_T=dict(recorder='logits', from_student=False)))))
