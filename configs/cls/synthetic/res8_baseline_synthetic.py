# resnet8 student trained alone: the baseline of the CPU classification study (tools/analysis/cls_study.py) on the
# synthetic 32x32 shapes set, 6 epochs (the teacher, res20_teacher_synthetic.py, gets 18).
_base_ = ['./res20_teacher_synthetic.py']

max_epochs = 6
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = dict(T_max=max_epochs, end=max_epochs)
default_hooks = dict(checkpoint=dict(interval=max_epochs))
model = dict(backbone=dict(arch='resnet8'))
