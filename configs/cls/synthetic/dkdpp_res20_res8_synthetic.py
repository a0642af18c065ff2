# DKD++ resnet20 -> resnet8: dkd_res20_res8_synthetic.py + ND 3.5 on the pooled feature against the teacher's class
# means (as configs/cls/cifar100/dkdpp_res56_res20.py), for the CPU classification study (tools/analysis/cls_study.py).
_base_ = ['./dkd_res20_res8_synthetic.py']

model = dict(
    class_means=dict(_delete_=True, num_classes=10, feat_dim=64),
    distiller=dict(
        distill_losses=dict(loss_nd=dict(type='NDLoss', loss_weight=3.5)),
        loss_forward_mappings=dict(
            loss_nd=dict(
                student_feat=dict(recorder='feat', from_student=True),
                teacher_feat=dict(recorder='feat', from_student=False),
                labels=dict(recorder='labels', from_student=True, data_idx=1)))))
custom_hooks = [dict(type='ClassMeansHook'), dict(type='mmkd.DistillMetricsHook', min_per_class=30, max_batches=8)]
