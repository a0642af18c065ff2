# KD++ on ImageNet-1k (arXiv 2305.17007, ImageNet/train_kd.py): CE + KD (T=1, linearly warmed up over 5 epochs) + ND
# on the penultimate feature with the teacher's class means (ClassMeansHook, one teacher pass over the training set
# before training). Pair configs set the models and the KD/ND weights (methods.md 1(d)).
_base_ = [
    '../models/imagenet_cls_distill.py', '../datasets/imagenet.py', '../schedules/imagenet_100e.py',
    '../default_runtime.py'
]

model = dict(
    class_means=dict(num_classes=1000, feat_dim=None),  # feat_dim = the teacher's width
    loss_warmup=dict(loss_kd=5),
    distiller=dict(
        # ClsDistill adds the recorders feat (neck), logits (head.fc) and, for the student, labels (head.loss_module)
        distill_losses=dict(
            loss_kd=dict(type='KLDivergence', tau=1, loss_weight=1.0, reduction='batchmean'),
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
