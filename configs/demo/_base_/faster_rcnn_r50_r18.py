# Demo pair: the R50-FPN teacher of faster_rcnn_r50_teacher.py -> an R18-FPN student, with mmkd.RoIDistill.
_base_ = './faster_rcnn_r50_synthetic.py'

teacher_ckpt = 'work_dirs/demo/teacher/iter_1500.pth'  # configs/demo/faster_rcnn_r50_teacher.py
model = dict(
    _delete_=True,
    _scope_='mmkd',
    type='RoIDistill',
    architecture=dict(
        _base_.model,
        backbone=dict(_base_.model.backbone, depth=18),
        neck=dict(_base_.model.neck, in_channels=[16, 32, 64, 128])),
    teacher=_base_.model,
    teacher_ckpt=teacher_ckpt,
    distiller=dict(type='ConfigurableDistiller'))
