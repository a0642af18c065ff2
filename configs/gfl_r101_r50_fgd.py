# GFL R101-FPN ms-2x -> GFL R50-FPN 1x, FGD (the authors' gfl_r101_distill_gfl_r50_fpn_1x_coco: 40.2 -> 43.5),
# the student's neck and head starting from the teacher's (the authors' init_student), gradients clipped at 35.
_base_ = ['./_base_/distill/gfl_r101_r50.py', './_base_/distill/dense_losses.py']

model = dict(student_init_from_teacher=['neck', 'bbox_head'], distiller=_base_.fgd_distiller)
optim_wrapper = dict(clip_grad=dict(max_norm=35, norm_type=2))
