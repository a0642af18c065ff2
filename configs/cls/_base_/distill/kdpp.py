# KD++ (Wang et al., "Improving Knowledge Distillation via Regularizing Feature Norm and Direction",
# arXiv 2305.17007): CE + KD (T=4, linearly warmed up over 20 epochs) + ND on the penultimate feature, with the
# teacher's class means computed by ClassMeansHook before training. Pair configs set the models, the KD and ND
# weights (docs/methods.md 1(d)) and, when the widths differ, the student projector.
# The method only (model and hooks, no data or schedule): cifar100_kdpp.py adds CIFAR-100, its 240-epoch schedule and
# the runtime; configs/cls/synthetic/ adds the generated shapes set instead.
_base_ = ['../models/cifar100_cls_distill.py', './cls_losses.py']

model = dict(
    class_means=dict(num_classes=100, feat_dim=None),  # feat_dim = the teacher's width
    loss_warmup=dict(loss_kd=20),
    distiller=_base_.kdpp_distiller)
custom_hooks = [dict(type='ClassMeansHook')]
