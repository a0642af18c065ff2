# make demo's dense teacher: the dense study's GFL R50-FPN teacher (gfl_r50_teacher.py) on a schedule that fits the
# demo's 20 minutes, its backbone started from the demo Faster R-CNN teacher's (the same width-reduced ResNet-50),
# as a COCO recipe starts from an ImageNet backbone. The demo passes the path of the Faster R-CNN teacher it
# trained (`model.backbone.init_cfg.checkpoint`). The schedule was chosen on the held-out training images among
# those that fit the demo (the dense study's log, demo_teacher_tuning): 300 / 600 / 900 iterations reach 0.29 /
# 0.45 / 0.55 there in 58 / 102 / 148 s; 900 would leave the demo no margin under 20 minutes.
_base_ = './gfl_r50_teacher.py'

max_iters = 600
train_cfg = dict(max_iters=max_iters, val_interval=max_iters // 4)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters, milestones=[int(max_iters * 0.8)], gamma=0.1)
]
default_hooks = dict(checkpoint=dict(interval=max_iters))
model = dict(backbone=dict(init_cfg=dict(_delete_=True, type='Pretrained', prefix='backbone.',
                                         checkpoint='work_dirs/demo/teacher/iter_1500.pth')))
