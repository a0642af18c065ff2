# Demo teacher: Faster R-CNN R50-FPN (width-reduced, see the base) on the synthetic shapes, trained longer than the
# students.
_base_ = './_base_/faster_rcnn_r50_synthetic.py'

max_iters = 3000
train_cfg = dict(max_iters=max_iters, val_interval=max_iters // 6)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters, milestones=[int(max_iters * 0.8)], gamma=0.1)
]
# lr 2e-3, the one the teacher was tuned with (the students' 1e-3 was chosen for their 1600 iterations)
optim_wrapper = dict(optimizer=dict(lr=2e-3))
default_hooks = dict(checkpoint=dict(interval=max_iters))
