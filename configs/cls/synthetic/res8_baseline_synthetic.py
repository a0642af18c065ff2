# resnet8 student trained alone: the baseline of the CPU classification study (tools/analysis/cls_study.py) on the
# synthetic shapes at 16x16; its schedule, chosen on this row on the held-out split
# (tools/analysis/logs/cls_study/schedule_tuning/README.md), is every student's: 20 epochs, SGD lr 0.1 with x0.1 steps.
_base_ = ['./res20_teacher_synthetic.py']

max_epochs = 20
# lr 0.1 for 62.5% of the epochs, then x0.1 at 62.5%, 75% and 87.5% (the shape of the CIFAR KD schedule, 150/180/210
# of 240 epochs), validated every quarter
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs // 4)
param_scheduler = dict(_delete_=True, type='MultiStepLR', by_epoch=True, milestones=[13, 15, 18], gamma=0.1,
                       convert_to_iter_based=True)
default_hooks = dict(checkpoint=dict(interval=max_epochs))
model = dict(backbone=dict(arch='resnet8'))
