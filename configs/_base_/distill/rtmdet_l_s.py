# Dense distillation of mmdet's RTMDet-l into RTMDet-s (mmkd.DenseDistill), with mmdet 3.3's RTMDet-s recipe
# kept: 300 epochs AdamW 0.004, mosaic/mixup until epoch 280 then the stage-2 pipeline (PipelineSwitchHook), EMA.
# As mmyolo's RTMDet distillation configs, distillation stops where the pipeline switches (StopDistillHook 280):
# the last 20 epochs train the student alone.
_base_ = 'mmdet::rtmdet/rtmdet_s_8xb32-300e_coco.py'  # the student: RTMDet-s, box AP 44.5

custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)
train_dataloader = dict(dataset=dict(type='mmkd.CocoDataset'))
val_dataloader = dict(dataset=dict(type='mmkd.CocoDataset'))
test_dataloader = val_dataloader

# mmdet's COCO-trained RTMDet-l (rtmdet_l_8xb32-300e_coco, box AP 51.3), mmdet 3.3 model zoo:
# https://download.openmmlab.com/mmdetection/v3.0/rtmdet/rtmdet_l_8xb32-300e_coco/rtmdet_l_8xb32-300e_coco_20220719_112030-5a0be7c4.pth  # noqa
teacher_ckpt = 'checkpoints/rtmdet_l_8xb32-300e_coco_20220719_112030-5a0be7c4.pth'

# RTMDet-l's model (mmdet's rtmdet_l_8xb32-300e_coco.py) from the student's: the widths and depths it sets
teacher = dict(
    _base_.model,
    backbone=dict(_base_.model.backbone, deepen_factor=1, widen_factor=1, init_cfg=None),
    neck=dict(_base_.model.neck, in_channels=[256, 512, 1024], out_channels=256, num_csp_blocks=3),
    bbox_head=dict(_base_.model.bbox_head, in_channels=256, feat_channels=256, exp_on_reg=True))
model = dict(
    _delete_=True,
    _scope_='mmkd',
    type='DenseDistill',
    architecture=_base_.model,
    teacher=teacher,
    teacher_ckpt=teacher_ckpt,
    distiller=dict(type='ConfigurableDistiller'))

stop_distill_epoch = 280  # = the pipeline switch of the student's recipe (max_epochs - stage2_num_epochs)
custom_hooks = [
    dict(type='EMAHook', ema_type='ExpMomentumEMA', momentum=0.0002, update_buffers=True, strict_load=False,
         priority=49),
    dict(type='PipelineSwitchHook', switch_epoch=stop_distill_epoch, switch_pipeline=_base_.train_pipeline_stage2),
    dict(type='mmrazor.StopDistillHook', stop_epoch=stop_distill_epoch)
]
