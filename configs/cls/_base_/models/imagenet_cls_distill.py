# A distillation skeleton for ImageNet-style data (224 px RGB, ImageNet statistics): ClsDistill over a student and
# a frozen teacher that are both classifiers (backbone -> global average pooling -> linear head, cross-entropy).
# Method configs add the distiller's losses (and class_means when a loss reads them) and, for other data sets than
# ImageNet-1k, num_classes; pair configs set both backbones, the heads' in_channels and teacher_ckpt.
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
    distiller=dict(type='ConfigurableDistiller'))
del _classifier
