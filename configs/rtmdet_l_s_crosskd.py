# RTMDet-l -> RTMDet-s, CrossKD [PROPOSAL: the authors have no RTMDet config]: the student's output of
# cls_convs[l][0] / reg_convs[l][0] (k = 1 of 2), through a learnable 1x1 convolution 128 -> 256, aligned and
# SiLU-activated, runs through the teacher's cls_convs[l][1] -> rtm_cls[l] and reg_convs[l][1] -> rtm_reg[l];
# KD-QFL + GIoU against the teacher's predictions, normalised by the head's assign-metric sum.
_base_ = ['./_base_/distill/rtmdet_l_s.py', './_base_/distill/dense_losses.py']

model = dict(crosskd=_base_.crosskd)
