# A distillation skeleton for CIFAR-100: ClsDistill over a student and a frozen teacher that are both CIFAR-100
# classifiers (backbone -> global average pooling -> linear head, cross-entropy). Method configs add the distiller's
# losses (and class_means when a loss reads the teacher's class means); pair configs set both backbones, the heads'
# in_channels and teacher_ckpt.
_classifier = dict(
    type='ImageClassifier',
    data_preprocessor=dict(
        type='ImgDataPreprocessor', mean=[129.31, 124.06, 112.43], std=[68.16, 65.38, 70.43], bgr_to_rgb=False),
    backbone=dict(),  # set by each pair config
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=100, in_channels=None,
              loss=dict(type='mmdet.CrossEntropyLoss', loss_weight=1.0)))
model = dict(
    type='ClsDistill',
    architecture=_classifier,
    teacher=_classifier,
    teacher_ckpt=None,  # set by each pair config
    distiller=dict(type='ConfigurableDistiller'))
del _classifier
