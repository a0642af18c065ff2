# configs/cls/cifar100/nc_res56_res20.py on the synthetic 32x32 shapes set (10 classes), 30 epochs.
_base_ = ['../cifar100/nc_res56_res20.py']

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
teacher_ckpt = 'work_dirs/res56_teacher_synthetic/epoch_30.pth'  # configs/cls/synthetic/res56_teacher_synthetic.py
model = dict(
    architecture=dict(head=dict(num_classes=10)), teacher=dict(head=dict(num_classes=10)),
    class_means=dict(num_classes=10), teacher_ckpt=teacher_ckpt)
del _hint
