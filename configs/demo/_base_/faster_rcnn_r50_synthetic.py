# mmdet's Faster R-CNN R50-FPN on mmkd's synthetic COCO-format shapes, sized so that a teacher and its students
# train to a plateau from scratch on a 2-core CPU in minutes: 64x64 images with 1-2 shapes of 16-48 px
# (4 classes), a width-reduced ResNet (base_channels=16: stage widths 64-512 for R50, 16-128 for R18), a 64-channel
# FPN, a 512-d box head, few proposals and 32 RoIs per image; no pretrained weights (none can be downloaded),
# BatchNorm trained, AdamW with an iteration-based schedule. Generate the data first (run_demo.py does):
#   python tools/misc/generate_synthetic_data.py det --out data/synthetic_coco --img-size 64 --num-classes 4 \
#       --min-object-size 16 --num-train 2000 --num-val 300
_base_ = '../../_base_/faster_rcnn_r50_fpn_1x_coco.py'

data_root = 'data/synthetic_coco/'
metainfo = dict(classes=('circle', 'square', 'triangle', 'star'))
img_scale = (64, 64)
max_iters = 1000  # the students' schedule, chosen on the student-alone row (held-out split): 0.199, plateau
channels = 64

model = dict(
    backbone=dict(base_channels=16, frozen_stages=-1, norm_eval=False, init_cfg=None),
    neck=dict(in_channels=[64, 128, 256, 512], out_channels=channels),
    rpn_head=dict(in_channels=channels, feat_channels=channels, anchor_generator=dict(scales=[4])),
    roi_head=dict(
        # mmcv's RoIAlign, computed on the CPU by mmkd's kernels (mmkd/ops/roi_align.py): ~8x faster there
        bbox_roi_extractor=dict(type='mmkd.models.roi_heads.SingleRoIExtractor',  # its import path: mmdet scope
                                roi_layer=dict(type='mmkd.RoIAlign'), out_channels=channels),
        bbox_head=dict(in_channels=channels, fc_out_channels=512, num_classes=len(metainfo['classes']))),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=300, max_per_img=100),
        rcnn=dict(sampler=dict(num=32, pos_fraction=0.25))),
    test_cfg=dict(rpn=dict(nms_pre=300, max_per_img=100), rcnn=dict(max_per_img=20)))

_missing = ('Generate it with: python tools/misc/generate_synthetic_data.py det --out data/synthetic_coco '
            '--img-size 64 --num-classes 4 --min-object-size 16 --num-train 2000 --num-val 300')
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    batch_sampler=None,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='images/train/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=4),
        pipeline=train_pipeline,
        missing_hint=_missing))
val_dataloader = dict(
    batch_size=16,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='images/val/'),
        pipeline=test_pipeline,
        missing_hint=_missing))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json', classwise=True)
test_evaluator = val_evaluator

train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters // 4)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters,
         milestones=[int(max_iters * 0.55), int(max_iters * 0.75)], gamma=0.1)
]
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=1e-3, weight_decay=0.05, foreach=True),  # foreach: faster step
    clip_grad=dict(max_norm=10, norm_type=2))
default_hooks = dict(
    logger=dict(interval=50, log_metric_by_epoch=False),  # validation scalars at their iteration, not epoch 0
    checkpoint=dict(by_epoch=False, interval=max_iters, max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
# NC1-NC4 of the penultimate RoI feature (and teacher agreement in distillation runs) at every validation, on
# validation boxes until each class has 30 (about 110 images: ~1.5 boxes per 64 px image), at most 10 batches
custom_hooks = [dict(type='mmkd.DistillMetricsHook', min_per_class=30, max_batches=10)]
env_cfg = dict(dist_cfg=dict(backend='gloo'))
del _missing
