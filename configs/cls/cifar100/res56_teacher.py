# resnet56 teacher on CIFAR-100 (240 epochs, batch 2 x 64, lr 0.1). Its last checkpoint,
# work_dirs/res56_teacher/epoch_240.pth, is the teacher_ckpt of the distillation configs.
_base_ = [
    '../_base_/models/cifar100_classifier.py', '../_base_/datasets/cifar100.py',
    '../_base_/schedules/cifar100_240e.py', '../_base_/default_runtime.py'
]
model = dict(backbone=dict(_delete_=True, type='CIFARResNet', arch='resnet56'), head=dict(in_channels=64))
