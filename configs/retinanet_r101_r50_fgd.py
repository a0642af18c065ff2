# RetinaNet R101-FPN 1x -> RetinaNet R50-FPN 1x, FGD with the authors' RetinaNet settings (their R101 -> R50 config
# trains 2x; this one keeps the student's 1x), the student's neck and head from the teacher's, clip 35.
_base_ = ['./_base_/distill/retinanet_r101_r50.py', './_base_/distill/dense_losses.py']

_init = dict(type='Pretrained', checkpoint=_base_.teacher_ckpt)
model = dict(
    architecture=dict(neck=dict(init_cfg=dict(_init, prefix='neck.')),
                      bbox_head=dict(init_cfg=dict(_init, prefix='bbox_head.'))),
    distiller=_base_.fgd_distiller)
optim_wrapper = dict(clip_grad=dict(max_norm=35, norm_type=2))
