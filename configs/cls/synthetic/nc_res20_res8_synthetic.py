# [PROPOSAL] NC-inspired distillation resnet20 -> resnet8 (CE + NCLoss, all weights 1, as
# configs/cls/cifar100/nc_res56_res20.py) for the CPU classification study (tools/analysis/cls_study.py) on the
# synthetic shapes set at 16x16: 20 epochs of batch 64, lr 0.1 with x0.1 steps. Why it loses at short schedules (NC's
# backbone gradient is several times the CE's): tools/analysis/logs/nc_icd_analysis.md.
_base_ = ['../cifar100/nc_res56_res20.py']

data_root = 'data/synthetic_cifar'
# shown when the data is missing, instead of how to download CIFAR-100
_hint = ('Generate it with: python tools/misc/generate_synthetic_data.py cls --out {data_root} '
            '--num-train 10000 --num-val 5000 (tools/analysis/cls_study.py generates it itself)')
teacher_ckpt = 'work_dirs/cls_study/teacher/epoch_30.pth'  # configs/cls/synthetic/res20_teacher_synthetic.py
max_epochs = 20  # the student schedule of res8_baseline_synthetic.py
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
# lr 0.1 for 62.5% of the epochs, then x0.1 at 62.5%, 75% and 87.5% (the shape of the CIFAR KD schedule, 150/180/210
# of 240 epochs), validated every quarter
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs // 4)
param_scheduler = dict(_delete_=True, type='MultiStepLR', by_epoch=True, milestones=[13, 15, 18], gamma=0.1,
                       convert_to_iter_based=True)
default_hooks = dict(checkpoint=dict(interval=max_epochs))
model = dict(
    architecture=dict(backbone=dict(arch='resnet8'), head=dict(num_classes=10)),
    teacher=dict(backbone=dict(arch='resnet20'), head=dict(num_classes=10)),
    class_means=dict(num_classes=10), teacher_ckpt=teacher_ckpt)
# NC metrics of student and teacher after every validation (plot_study.py's NC picture)
custom_hooks = [dict(type='ClassMeansHook'), dict(type='mmkd.DistillMetricsHook', min_per_class=30, max_batches=8)]
del _hint, _resize
