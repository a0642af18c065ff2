# KD++ (Wang et al., "Improving Knowledge Distillation via Regularizing Feature Norm and Direction",
# arXiv 2305.17007): CE + KD (T=4, linearly warmed up over 20 epochs) + ND on the penultimate feature, with the
# teacher's class means computed by ClassMeansHook before training. Pair configs set the models, the KD and ND
# weights (methods.md 1(d)) and, when the widths differ, the student projector.
# The method only (model and hooks, no data or schedule): cifar100_kdpp.py adds CIFAR-100, its 240-epoch schedule and
# the runtime; configs/cls/synthetic/ adds the generated shapes set instead.
_base_ = ['../models/cifar100_cls_distill.py']

model = dict(
    class_means=dict(num_classes=100, feat_dim=None),  # feat_dim = the teacher's width
    loss_warmup=dict(loss_kd=20),
    distiller=dict(
        # ClsDistill adds the recorders feat (neck), logits (head.fc) and, for the student, labels (head.loss_module)
        distill_losses=dict(
            loss_kd=dict(type='KLDivergence', tau=4, loss_weight=1.0, reduction='batchmean'),
            loss_nd=dict(type='NDLoss', loss_weight=1.0)),
        loss_forward_mappings=dict(
            loss_kd=dict(
                preds_S=dict(recorder='logits', from_student=True),
                preds_T=dict(recorder='logits', from_student=False)),
            loss_nd=dict(
                student_feat=dict(recorder='feat', from_student=True),
                teacher_feat=dict(recorder='feat', from_student=False),
                labels=dict(recorder='labels', from_student=True, data_idx=1)))))
custom_hooks = [dict(type='ClassMeansHook')]
