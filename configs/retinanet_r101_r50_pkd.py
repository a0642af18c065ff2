# RetinaNet R101-FPN 1x -> RetinaNet R50-FPN 1x, PKD on FPN levels 0-3 (weight 10, as mmrazor's
# pkd_fpn_retina_x101_retina_r50_2x_coco).
_base_ = ['./_base_/distill/retinanet_r101_r50.py', './_base_/distill/dense_losses.py']

model = dict(distiller=_base_.pkd_distiller)
