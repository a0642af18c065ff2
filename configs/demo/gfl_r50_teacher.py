# Demo dense teacher: GFL R50-FPN (width-reduced, see the base) on the synthetic shapes, with the schedule of the
# demo Faster R-CNN teacher (faster_rcnn_r50_teacher.py: 1500 iterations, lr 2e-3; trained by 2 processes there).
# Not tuned for GFL yet.
_base_ = './_base_/gfl_r50_synthetic.py'

max_iters = 1500
train_cfg = dict(max_iters=max_iters, val_interval=max_iters // 6)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters, milestones=[int(max_iters * 0.8)], gamma=0.1)
]
optim_wrapper = dict(optimizer=dict(lr=2e-3))
default_hooks = dict(checkpoint=dict(interval=max_iters))
