# Demo teacher: Faster R-CNN R50-FPN on the synthetic shapes, trained twice as long as the students.
_base_ = './_base_/faster_rcnn_r50_synthetic.py'

max_iters = 300
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=50),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters, milestones=[225], gamma=0.1)
]
default_hooks = dict(checkpoint=dict(interval=max_iters))
