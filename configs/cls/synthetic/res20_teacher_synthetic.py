# resnet20 teacher of the CPU classification study (tools/analysis/cls_study.py) on the synthetic shapes set (10
# classes, 32x32 images downsampled to 16x16): 30 epochs of batch 64, SGD lr 0.1 with cosine decay, to its plateau on
# the held-out split (tools/analysis/logs/cls_study/schedule_tuning/README.md).
_base_ = ['../cifar100/res56_teacher.py']

data_root = 'data/synthetic_cifar'
# shown when the data is missing, instead of how to download CIFAR-100
_hint = ('Generate it with: python tools/misc/generate_synthetic_data.py cls --out {data_root} '
            '--num-train 10000 --num-val 5000 (tools/analysis/cls_study.py generates it itself)')
max_epochs = 30
# 32x32 images area-downsampled to 16x16 (why: tools/analysis/logs/cls_study/schedule_tuning/README.md), in memory:
# loading in the main process beats worker processes on a 2-core CPU
_resize = dict(type='Resize', scale=(16, 16), keep_ratio=False, interpolation='area')
train_pipeline = [_resize, dict(type='ClsRandomCrop', crop_size=16, padding=2),
                  dict(type='RandomFlip', prob=0.5, direction='horizontal'), dict(type='PackClsInputs')]
test_pipeline = [_resize, dict(type='PackClsInputs')]
train_dataloader = dict(num_workers=0, persistent_workers=False,
                        dataset=dict(data_root=data_root, missing_hint=_hint, pipeline=train_pipeline))
val_dataloader = dict(num_workers=0, persistent_workers=False,
                      dataset=dict(data_root=data_root, missing_hint=_hint, pipeline=test_pipeline))
test_dataloader = val_dataloader
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs // 5)
param_scheduler = dict(_delete_=True, type='CosineAnnealingLR', by_epoch=True, T_max=max_epochs, end=max_epochs,
                       convert_to_iter_based=True)
default_hooks = dict(checkpoint=dict(interval=max_epochs))
# neural-collapse metrics of the model after every validation (plot_study.py's NC picture)
custom_hooks = [dict(type='mmkd.DistillMetricsHook', min_per_class=30, max_batches=8)]
model = dict(backbone=dict(arch='resnet20'), head=dict(num_classes=10))
del _hint, _resize
