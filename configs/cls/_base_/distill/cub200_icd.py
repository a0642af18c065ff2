# iCD + KD as released on CUB-200-2011 (Xue et al., arXiv 2509.12553; CD-SDD-KD): 0.1 CE + 0.9 SDD-KD (T=4) + 2.0
# iCD (gamma = 2, the CUB value) on the 1x1/2x2/4x4 local logits (pooled as SDD's SPP: 4x4 first, which on the
# students' 14x14 maps uses overlapping windows); 224 px crops, batch 64 on one GPU, lr 0.01, 240 epochs x0.1 at
# 150/180/210, as the released configs.
_base_ = [
    '../models/imagenet_cls_distill.py', '../datasets/cub200.py', '../schedules/cifar100_240e.py',
    '../default_runtime.py', './cls_losses.py'
]

model = dict(
    architecture=dict(head=dict(num_classes=200, local_scales=(1, 2, 4), loss=dict(loss_weight=0.1))),  # 0.1 CE
    teacher=dict(head=dict(num_classes=200, local_scales=(1, 2, 4))),
    distiller=_base_.icd_distiller)
optim_wrapper = dict(optimizer=dict(lr=0.01, nesterov=False))
auto_scale_lr = dict(base_batch_size=64)
