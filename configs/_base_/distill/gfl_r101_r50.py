# Dense distillation of mmdet's GFL R101-FPN ms-2x teacher into the GFL R50-FPN 1x student (mmkd.DenseDistill):
# the teacher's backbone and neck run frozen, its head only where a loss reads it, on the student's label
# assignment. Method configs add the distiller (FPN losses) or crosskd / ld (head losses).
_base_ = 'mmdet::gfl/gfl_r50_fpn_1x_coco.py'  # the student: GFL R50-FPN 1x, box AP 40.2 (SGD 0.01, batch 16)

custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)
train_dataloader = dict(dataset=dict(type='mmkd.CocoDataset'))  # stops at once, clearly, if data/coco/ is missing
val_dataloader = dict(dataset=dict(type='mmkd.CocoDataset'))
test_dataloader = val_dataloader
auto_scale_lr = dict(enable=False, base_batch_size=16)

# mmdet's COCO-trained GFL R101-FPN ms-2x (gfl_r101_fpn_ms-2x_coco, box AP 44.7), from the mmdet 3.3 model zoo:
# https://download.openmmlab.com/mmdetection/v2.0/gfl/gfl_r101_fpn_mstrain_2x_coco/gfl_r101_fpn_mstrain_2x_coco_20200629_200126-dd12f847.pth  # noqa
teacher_ckpt = 'checkpoints/gfl_r101_fpn_mstrain_2x_coco_20200629_200126-dd12f847.pth'

teacher = dict(_base_.model, backbone=dict(_base_.model.backbone, depth=101, init_cfg=None))
model = dict(
    _delete_=True,
    _scope_='mmkd',
    type='DenseDistill',
    architecture=_base_.model,
    teacher=teacher,
    teacher_ckpt=teacher_ckpt,
    distiller=dict(type='ConfigurableDistiller'))
