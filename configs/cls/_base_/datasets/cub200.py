# CUB-200-2011 with its official split: data/CUB_200_2011/{images.txt, train_test_split.txt,
# image_class_labels.txt, images/}. As in the SDD/iCD code: resize the short side to 256, random crop 224 + flip for
# training; resize 256 + centre crop 224 for testing. 64 images per batch.
dataset_type = 'CUB200'
data_root = 'data/CUB_200_2011'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ClsResizeEdge', scale=256, edge='short'),
    dict(type='ClsRandomCrop', crop_size=224),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackClsInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ClsResizeEdge', scale=256, edge='short'),
    dict(type='ClsCenterCrop', crop_size=224),
    dict(type='PackClsInputs'),
]
train_dataloader = dict(
    batch_size=64, num_workers=4, persistent_workers=True, sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, split='train', pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=64, num_workers=4, persistent_workers=True, sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, split='test', pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, 5))
test_evaluator = val_evaluator
