# The data and student schedule of the CPU classification study (tools/analysis/cls_study.py): the generated shapes
# set (10 classes, CIFAR-100 format, 32x32 images area-downsampled to 16x16; why 16x16:
# tools/analysis/logs/cls_study/schedule_tuning/README.md), held in memory and loaded in the main process (worker
# processes cost more than they save on a 2-core CPU), with the students' schedule, chosen on the student-alone row
# on the held-out split: 24 epochs of batch 64, SGD lr 0.1, x0.1 at 50%, 67% and 75% of the epochs (12, 16, 18),
# validated every quarter. It ends where the 20-epoch schedule of the CIFAR KD shape (x0.1 at 62.5%, 75%, 87.5%)
# did, with a flatter last quarter (schedule_tuning/README.md: 61.0 against 60.9 held-out, +0.5 against +0.9).
# The study's configs add a model (a classifier or a distillation method) on top; the teacher replaces the schedule.
_base_ = ['../../_base_/datasets/cifar100.py', '../../_base_/schedules/cifar100_240e.py',
          '../../_base_/default_runtime.py']

data_root = 'data/synthetic_cifar'
# shown when the data is missing, instead of how to download CIFAR-100
_hint = ('Generate it with: python tools/misc/generate_synthetic_data.py cls --out {data_root} '
         '--num-train 10000 --num-val 5000 (tools/analysis/cls_study.py generates it itself)')
_resize = dict(type='Resize', scale=(16, 16), keep_ratio=False, interpolation='area')
train_pipeline = [_resize, dict(type='ClsRandomCrop', crop_size=16, padding=2),
                  dict(type='RandomFlip', prob=0.5, direction='horizontal'), dict(type='PackClsInputs')]
test_pipeline = [_resize, dict(type='PackClsInputs')]
train_dataloader = dict(num_workers=0, persistent_workers=False,
                        dataset=dict(data_root=data_root, missing_hint=_hint, pipeline=train_pipeline))
val_dataloader = dict(num_workers=0, persistent_workers=False,
                      dataset=dict(data_root=data_root, missing_hint=_hint, pipeline=test_pipeline))
test_dataloader = val_dataloader

max_epochs = 24
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs // 4)
param_scheduler = dict(_delete_=True, type='MultiStepLR', by_epoch=True, milestones=[12, 16, 18], gamma=0.1,
                       convert_to_iter_based=True)
default_hooks = dict(checkpoint=dict(interval=max_epochs))
del _hint, _resize
