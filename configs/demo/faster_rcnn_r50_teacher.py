# Demo teacher: Faster R-CNN R50-FPN (width-reduced, see the base) on the synthetic shapes, trained longer than the
# students and by 2 processes (`tools/dist_train.sh configs/demo/faster_rcnn_r50_teacher.py 2`; on a CPU each
# process trains with gloo): the batch of 8 is per process, 16 in all, as mmdet's batch is per GPU. The study and
# the demo train it so (`det_study.py --teacher-procs 2`): 1500 iterations of 16 images reach 0.62 held-out mAP in
# 6.3 minutes on 2 cores, where one process needed 2400 iterations of 8 for 0.59 in 11.4
# (tools/analysis/logs/det_study/schedule_tuning/README.md).
_base_ = './_base_/faster_rcnn_r50_synthetic.py'

max_iters = 1500
train_cfg = dict(max_iters=max_iters, val_interval=max_iters // 6)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters, milestones=[int(max_iters * 0.8)], gamma=0.1)
]
# lr 2e-3, the one the teacher was tuned with (the students' 1e-3 was chosen for their schedule)
optim_wrapper = dict(optimizer=dict(lr=2e-3))
default_hooks = dict(checkpoint=dict(interval=max_iters))
