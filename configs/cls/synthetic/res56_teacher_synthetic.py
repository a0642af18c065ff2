# resnet56 teacher on the synthetic 32x32 shapes set (10 classes, CIFAR-100 format): 30 epochs, x0.1 at 20/25.
_base_ = ['../cifar100/res56_teacher.py']

data_root = 'data/synthetic_cifar'
# shown when the data is missing, instead of how to download CIFAR-100
_hint = ('Generate it with: python tools/misc/generate_synthetic_data.py cls --out {data_root} '
            '--num-train 10000 --num-val 5000 (tools/analysis/cls_study.py generates it itself)')
train_dataloader = dict(dataset=dict(data_root=data_root, missing_hint=_hint))
val_dataloader = dict(dataset=dict(data_root=data_root, missing_hint=_hint))
test_dataloader = dict(dataset=dict(data_root=data_root, missing_hint=_hint))
train_cfg = dict(max_epochs=30, val_interval=5)
param_scheduler = dict(milestones=[20, 25])
default_hooks = dict(checkpoint=dict(interval=5))
model = dict(head=dict(num_classes=10))
del _hint
