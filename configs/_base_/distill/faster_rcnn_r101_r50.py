# RoI-aligned distillation of a Faster R-CNN R101-FPN teacher into the R50-FPN student (mmkd.RoIDistill):
# the teacher's RoI head runs on the student's sampled RoIs. Method configs add distill_losses and mappings.
_base_ = '../faster_rcnn_r50_fpn_1x_coco.py'

# mmdet's COCO-trained Faster R-CNN R101-FPN 1x (box AP 39.4), from the mmdet 3.3 model zoo:
# faster_rcnn/faster_rcnn_r101_fpn_1x_coco/faster_rcnn_r101_fpn_1x_coco_20200130-f513f705.pth
teacher_ckpt = 'checkpoints/faster_rcnn_r101_fpn_1x_coco_20200130-f513f705.pth'

teacher = dict(_base_.model, backbone=dict(_base_.model.backbone, depth=101, init_cfg=None))
model = dict(
    _delete_=True,
    _scope_='mmkd',
    type='RoIDistill',
    architecture=_base_.model,
    teacher=teacher,
    teacher_ckpt=teacher_ckpt,
    distiller=dict(type='ConfigurableDistiller'))
