# KD++ on ImageNet-1k (arXiv 2305.17007, ImageNet/train_kd.py): CE + KD (T=1, linearly warmed up over 5 epochs) + ND
# on the penultimate feature with the teacher's class means (ClassMeansHook, one teacher pass over the training set
# before training). Pair configs set the models and the KD/ND weights (docs/methods.md 1(d)).
_base_ = [
    '../models/imagenet_cls_distill.py', '../datasets/imagenet.py', '../schedules/imagenet_100e.py',
    '../default_runtime.py', './cls_losses.py'
]

model = dict(
    class_means=dict(num_classes=1000, feat_dim=None),  # feat_dim = the teacher's width
    loss_warmup=dict(loss_kd=5),
    distiller=_base_.kdpp_distiller)
model['distiller']['distill_losses']['loss_kd']['tau'] = 1  # the ImageNet recipe's KD temperature
custom_hooks = [dict(type='ClassMeansHook')]
