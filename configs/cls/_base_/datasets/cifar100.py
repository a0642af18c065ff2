# CIFAR-100 from the official python files: data/cifar100/cifar-100-python/{train,test,meta}
# (https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz). Images are held in memory; standard augmentation:
# random crop 32 with 4 px zero padding + horizontal flip. 64 images per GPU (the KD++ recipes use 2 GPUs = 128).
dataset_type = 'CIFAR100'
data_root = 'data/cifar100'
train_pipeline = [
    dict(type='ClsRandomCrop', crop_size=32, padding=4),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackClsInputs'),
]
test_pipeline = [dict(type='PackClsInputs')]
train_dataloader = dict(
    batch_size=64, num_workers=2, persistent_workers=True, sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, split='train', pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=128, num_workers=2, persistent_workers=True, sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, split='test', pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, 5))
test_evaluator = val_evaluator
