# KD++ resnet20 -> resnet8 (CE 1 + KD 1.0, T=4 + ND 2.0, as configs/cls/cifar100/kdpp_res56_res20.py) for the CPU
# classification study (tools/analysis/cls_study.py) on the synthetic shapes set at 16x16 (_base_/shapes16.py: 24
# epochs of batch 64, lr 0.1 with x0.1 steps), no KD warm-up (KD++'s 20 of 240 epochs would be 2 here: left out, as
# in every study row).
_base_ = ['../_base_/distill/kdpp.py', './_base_/shapes16.py']

teacher_ckpt = 'work_dirs/cls_study/teacher/epoch_50.pth'  # configs/cls/synthetic/res20_teacher_synthetic.py
model = dict(
    architecture=dict(backbone=dict(type='CIFARResNet', arch='resnet8'), head=dict(num_classes=10, in_channels=64)),
    teacher=dict(backbone=dict(type='CIFARResNet', arch='resnet20'), head=dict(num_classes=10, in_channels=64)),
    teacher_ckpt=teacher_ckpt,
    class_means=dict(num_classes=10, feat_dim=64),
    loss_warmup=None,
    distiller=dict(distill_losses=dict(loss_kd=dict(loss_weight=1.0), loss_nd=dict(loss_weight=2.0))))
# NC metrics of student and teacher after every validation (plot_study.py's NC picture)
custom_hooks = [dict(type='ClassMeansHook'), dict(type='mmkd.DistillMetricsHook', min_per_class=30, max_batches=8)]
