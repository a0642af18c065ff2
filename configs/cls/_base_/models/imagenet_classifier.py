# An ImageNet classifier on mmdet's registered ResNet: backbone (last stage) -> global average pooling -> linear
# head. BGR images from LoadImageFromFile are converted to RGB and normalised with the ImageNet statistics.
model = dict(
    type='ImageClassifier',
    data_preprocessor=dict(
        type='ImgDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=True),
    backbone=dict(type='mmdet.ResNet', depth=50, num_stages=4, out_indices=(3, ), frozen_stages=-1,
                  norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False, style='pytorch'),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=1000, in_channels=2048,
              loss=dict(type='mmdet.CrossEntropyLoss', loss_weight=1.0)))
