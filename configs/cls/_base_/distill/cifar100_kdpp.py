# KD++ on CIFAR-100 (Wang et al., "Improving Knowledge Distillation via Regularizing Feature Norm and Direction",
# arXiv 2305.17007): CE + KD (T=4, linearly warmed up over 20 epochs) + ND on the penultimate feature, with the
# teacher's class means computed by ClassMeansHook before training. Pair configs set the models, the KD and ND
# weights (methods.md 1(d)) and, when the widths differ, the student projector.
_base_ = ['../datasets/cifar100.py', '../schedules/cifar100_240e.py', '../default_runtime.py']

model = dict(
    type='ClsDistill',
    architecture=dict(
        type='ImageClassifier',
        data_preprocessor=dict(
            type='ImgDataPreprocessor', mean=[129.31, 124.06, 112.43], std=[68.16, 65.38, 70.43], bgr_to_rgb=False),
        backbone=dict(),  # set by each pair config
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=100, in_channels=None,
                  loss=dict(type='mmdet.CrossEntropyLoss', loss_weight=1.0))),
    teacher=dict(
        type='ImageClassifier',
        data_preprocessor=dict(
            type='ImgDataPreprocessor', mean=[129.31, 124.06, 112.43], std=[68.16, 65.38, 70.43], bgr_to_rgb=False),
        backbone=dict(),  # set by each pair config
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=100, in_channels=None,
                  loss=dict(type='mmdet.CrossEntropyLoss', loss_weight=1.0))),
    teacher_ckpt=None,  # set by each pair config
    class_means=dict(num_classes=100, feat_dim=None),  # feat_dim = the teacher's width
    loss_warmup=dict(loss_kd=20),
    distiller=dict(
        type='ConfigurableDistiller',
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
