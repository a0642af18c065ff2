# resnet56 teacher on the synthetic 32x32 shapes set (10 classes, CIFAR-100 format): 30 epochs, x0.1 at 20/25.
_base_ = ['../cifar100/res56_teacher.py']

data_root = 'data/synthetic_cifar'  # python tools/misc/generate_synthetic_data.py cls --out data/synthetic_cifar
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = dict(dataset=dict(data_root=data_root))
train_cfg = dict(max_epochs=30, val_interval=5)
param_scheduler = dict(milestones=[20, 25])
default_hooks = dict(checkpoint=dict(interval=5))
model = dict(head=dict(num_classes=10))
