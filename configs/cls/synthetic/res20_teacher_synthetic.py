# resnet20 teacher of the CPU classification study (tools/analysis/cls_study.py) on the synthetic 32x32 shapes set
# (10 classes): 18 epochs of batch 64, SGD lr 0.1 with cosine decay. The study trains its students for 6 epochs;
# the teacher, trained once, gets three times as many to widen the teacher-student gap.
_base_ = ['../cifar100/res56_teacher.py']

data_root = 'data/synthetic_cifar'
# shown when the data is missing, instead of how to download CIFAR-100
_hint = ('Generate it with: python tools/misc/generate_synthetic_data.py cls --out {data_root} '
            '--num-train 10000 --num-val 5000 (tools/analysis/cls_study.py generates it itself)')
max_epochs = 18
# in-memory 32x32 images: loading in the main process beats worker processes on a 2-core CPU
train_dataloader = dict(num_workers=0, persistent_workers=False, dataset=dict(data_root=data_root, missing_hint=_hint))
val_dataloader = dict(num_workers=0, persistent_workers=False, dataset=dict(data_root=data_root, missing_hint=_hint))
test_dataloader = val_dataloader
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = dict(_delete_=True, type='CosineAnnealingLR', by_epoch=True, T_max=max_epochs, end=max_epochs,
                       convert_to_iter_based=True)
default_hooks = dict(checkpoint=dict(interval=max_epochs))
# neural-collapse metrics of the model after every validation (plot_study.py's NC picture)
custom_hooks = [dict(type='mmkd.DistillMetricsHook', min_per_class=30, max_batches=8)]
model = dict(backbone=dict(arch='resnet20'), head=dict(num_classes=10))
del _hint
