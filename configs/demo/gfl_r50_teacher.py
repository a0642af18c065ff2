# Demo dense teacher: GFL R50-FPN (width-reduced, see the base) on the synthetic shapes, trained by 2 processes as
# the demo Faster R-CNN teacher. Its schedule was chosen on the held-out training images (the dense study's
# teacher_tuning log): 6000 iterations at AdamW lr 8e-3, LR step at 80%, reach 0.62 there; shorter schedules,
# other anchor sizes and weight decays stay below 0.60.
_base_ = './_base_/gfl_r50_synthetic.py'

max_iters = 6000
train_cfg = dict(max_iters=max_iters, val_interval=max_iters // 6)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters, milestones=[int(max_iters * 0.8)], gamma=0.1)
]
optim_wrapper = dict(optimizer=dict(lr=8e-3))
default_hooks = dict(checkpoint=dict(interval=max_iters))
