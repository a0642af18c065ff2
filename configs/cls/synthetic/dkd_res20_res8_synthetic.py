# DKD (Zhao et al., 2022) resnet20 -> resnet8: CE 1 + DKD (alpha 2.5, beta 4.0, T=4, as
# configs/cls/cifar100/dkdpp_res56_res20.py) for the CPU classification study (tools/analysis/cls_study.py);
# dkdpp_res20_res8_synthetic.py adds ND to it, so that DKD vs DKD++ isolates ND. No DKD warm-up (20 of 240 epochs
# would be 2 here: left out, as KD++'s).
_base_ = ['./kd_res20_res8_synthetic.py']

model = dict(
    distiller=dict(
        distill_losses=dict(
            _delete_=True,
            loss_dkd=dict(type='DKDLoss', tau=4, alpha=2.5, beta=4.0, reduction='batchmean', loss_weight=1.0)),
        loss_forward_mappings=dict(
            _delete_=True,
            loss_dkd=dict(
                preds_S=dict(recorder='logits', from_student=True),
                preds_T=dict(recorder='logits', from_student=False),
                gt_labels=dict(recorder='labels', from_student=True, data_idx=1)))))
