# KD++ on ImageNet-1k (arXiv 2305.17007, ImageNet/train_kd.py): CE + KD (T=1, linearly warmed up over 5 epochs) + ND
# on the penultimate feature with the teacher's class means (ClassMeansHook, one teacher pass over the training set
# before training). Pair configs set the models and the KD/ND weights (methods.md 1(d)).
_base_ = ['../datasets/imagenet.py', '../schedules/imagenet_100e.py', '../default_runtime.py']

_classifier = dict(
    type='ImageClassifier',
    data_preprocessor=dict(
        type='ImgDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=True),
    backbone=dict(),  # set by each pair config
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=1000, in_channels=None,
              loss=dict(type='mmdet.CrossEntropyLoss', loss_weight=1.0)))
model = dict(
    type='ClsDistill',
    architecture=_classifier,
    teacher=_classifier,
    teacher_ckpt=None,  # set by each pair config
    class_means=dict(num_classes=1000, feat_dim=None),  # feat_dim = the teacher's width
    loss_warmup=dict(loss_kd=5),
    distiller=dict(
        type='ConfigurableDistiller',
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
del _classifier
custom_hooks = [dict(type='ClassMeansHook')]
