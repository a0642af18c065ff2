# Demo dense pair: the GFL R50-FPN teacher of gfl_r50_teacher.py -> a GFL R18-FPN student, with mmkd.DenseDistill.
_base_ = './gfl_r50_synthetic.py'

teacher_ckpt = 'work_dirs/demo/gfl_teacher/iter_6000.pth'  # configs/demo/gfl_r50_teacher.py
model = dict(
    _delete_=True,
    _scope_='mmkd',
    type='DenseDistill',
    architecture=dict(
        _base_.model,
        backbone=dict(_base_.model.backbone, depth=18),
        neck=dict(_base_.model.neck, in_channels=[16, 32, 64, 128])),
    teacher=_base_.model,
    teacher_ckpt=teacher_ckpt,
    distiller=dict(type='ConfigurableDistiller'))
