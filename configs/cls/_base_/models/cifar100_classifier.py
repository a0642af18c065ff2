# A CIFAR-100 classifier: backbone -> global average pooling -> linear head (cross-entropy). Configs replace the
# backbone (with `_delete_=True` when its type changes) and head.in_channels.
model = dict(
    type='ImageClassifier',
    data_preprocessor=dict(
        type='ImgDataPreprocessor', mean=[129.31, 124.06, 112.43], std=[68.16, 65.38, 70.43], bgr_to_rgb=False),
    backbone=dict(type='CIFARResNet', arch='resnet56'),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=100, in_channels=64,
              loss=dict(type='mmdet.CrossEntropyLoss', loss_weight=1.0)))
