# RetinaNet R101-FPN 1x -> RetinaNet R50-FPN 1x, FGD with the authors' RetinaNet settings (their R101 -> R50 config
# trains 2x; this one keeps the student's 1x), the student's neck and head from the teacher's, clip 35.
_base_ = ['./_base_/distill/retinanet_r101_r50.py', './_base_/distill/dense_losses.py']

model = dict(student_init_from_teacher=['neck', 'bbox_head'], distiller=_base_.fgd_distiller)
optim_wrapper = dict(clip_grad=dict(max_norm=35, norm_type=2))
