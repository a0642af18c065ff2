# resnet20 teacher of the CPU classification study (tools/analysis/cls_study.py) on the synthetic shapes set at 16x16
# (_base_/shapes16.py): 50 epochs of batch 64, SGD lr 0.1 with cosine decay: 80.5% on the held-out split
# (30 epochs: 76.0%; tools/analysis/logs/cls_study/schedule_tuning/README.md).
_base_ = ['../_base_/models/cifar100_classifier.py', './_base_/shapes16.py']

max_epochs = 50
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs // 5)
param_scheduler = dict(_delete_=True, type='CosineAnnealingLR', by_epoch=True, T_max=max_epochs, end=max_epochs,
                       convert_to_iter_based=True)
default_hooks = dict(checkpoint=dict(interval=max_epochs))
# neural-collapse metrics of the model after every validation (plot_study.py's NC picture)
custom_hooks = [dict(type='mmkd.DistillMetricsHook', min_per_class=30, max_batches=8)]
model = dict(backbone=dict(arch='resnet20'), head=dict(num_classes=10))
