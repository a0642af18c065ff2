# Dense distillation of mmdet's RetinaNet R101-FPN 1x teacher into the RetinaNet R50-FPN 1x student
# (mmkd.DenseDistill). Method configs add the distiller (FPN losses) or crosskd (head losses).
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'  # the student: box AP 36.5 (SGD 0.01, batch 16)

custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)
train_dataloader = dict(dataset=dict(type='mmkd.CocoDataset'))
val_dataloader = dict(dataset=dict(type='mmkd.CocoDataset'))
test_dataloader = val_dataloader
auto_scale_lr = dict(enable=False, base_batch_size=16)

# mmdet's COCO-trained RetinaNet R101-FPN 1x (retinanet_r101_fpn_1x_coco, box AP 38.5), mmdet 3.3 model zoo:
# https://download.openmmlab.com/mmdetection/v2.0/retinanet/retinanet_r101_fpn_1x_coco/retinanet_r101_fpn_1x_coco_20200130-7a93545f.pth  # noqa
teacher_ckpt = 'checkpoints/retinanet_r101_fpn_1x_coco_20200130-7a93545f.pth'

teacher = dict(_base_.model, backbone=dict(_base_.model.backbone, depth=101, init_cfg=None))
model = dict(
    _delete_=True,
    _scope_='mmkd',
    type='DenseDistill',
    architecture=_base_.model,
    teacher=teacher,
    teacher_ckpt=teacher_ckpt,
    distiller=dict(type='ConfigurableDistiller'))
