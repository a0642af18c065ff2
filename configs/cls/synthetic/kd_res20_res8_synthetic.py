# Plain KD (Hinton et al., 2015) resnet20 -> resnet8: kdpp_res20_res8_synthetic.py without the ND loss, i.e.
# CE 1 + KD 1.0 (T=4), so that KD vs KD++ isolates ND. CPU classification study (tools/analysis/cls_study.py).
_base_ = ['./kdpp_res20_res8_synthetic.py']

model = dict(
    class_means=None,
    distiller=dict(
        distill_losses=dict(
            _delete_=True, loss_kd=dict(type='KLDivergence', tau=4, loss_weight=1.0, reduction='batchmean')),
        loss_forward_mappings=dict(
            _delete_=True,
            loss_kd=dict(
                preds_S=dict(recorder='logits', from_student=True),
                preds_T=dict(recorder='logits', from_student=False)))))
# no class means (KD does not read them); NC metrics of student and teacher after every validation
custom_hooks = [dict(type='mmkd.DistillMetricsHook', min_per_class=30, max_batches=8)]
