# DKD++ (arXiv 2305.17007): CE + DKD (mmrazor's DKDLoss, T=4, warmed up over 20 epochs) + ND, with
# the teacher's class means computed by ClassMeansHook. Pair configs set alpha, beta and the ND weight.
# The method only (model and hooks, no data or schedule): cifar100_dkdpp.py adds CIFAR-100, its 240-epoch schedule and
# the runtime.
_base_ = ['../models/cifar100_cls_distill.py']

model = dict(
    class_means=dict(num_classes=100, feat_dim=None),  # feat_dim = the teacher's width
    loss_warmup=dict(loss_dkd=20),
    distiller=dict(
        # ClsDistill adds the recorders feat (neck), logits (head.fc) and, for the student, labels (head.loss_module)
        distill_losses=dict(
            loss_dkd=dict(type='DKDLoss', tau=4, alpha=1.0, beta=8.0, reduction='batchmean', loss_weight=1.0),
            loss_nd=dict(type='NDLoss', loss_weight=1.0)),
        loss_forward_mappings=dict(
            loss_dkd=dict(
                preds_S=dict(recorder='logits', from_student=True),
                preds_T=dict(recorder='logits', from_student=False),
                gt_labels=dict(recorder='labels', from_student=True, data_idx=1)),
            loss_nd=dict(
                student_feat=dict(recorder='feat', from_student=True),
                teacher_feat=dict(recorder='feat', from_student=False),
                labels=dict(recorder='labels', from_student=True, data_idx=1)))))
custom_hooks = [dict(type='ClassMeansHook')]
