# DKD++ (arXiv 2305.17007): CE + DKD (mmrazor's DKDLoss, T=4, warmed up over 20 epochs) + ND, with
# the teacher's class means computed by ClassMeansHook. Pair configs set alpha, beta and the ND weight.
# The method only (model and hooks, no data or schedule): cifar100_dkdpp.py adds CIFAR-100, its 240-epoch schedule and
# the runtime.
_base_ = ['../models/cifar100_cls_distill.py', './cls_losses.py']

model = dict(
    class_means=dict(num_classes=100, feat_dim=None),  # feat_dim = the teacher's width
    loss_warmup=dict(loss_dkd=20),
    distiller=_base_.dkdpp_distiller)
custom_hooks = [dict(type='ClassMeansHook')]
