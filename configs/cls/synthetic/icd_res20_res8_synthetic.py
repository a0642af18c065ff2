# iCD + KD as released resnet20 -> resnet8 (0.1 CE + 0.9 SDD-KD, T=4 + 2.0 iCD, lr 0.05, as
# configs/cls/cifar100/icd_res56_res20.py) for the CPU classification study (tools/analysis/cls_study.py) on the
# synthetic shapes set at 16x16 (_base_/shapes16.py: 24 epochs of batch 64 with x0.1 steps). Why it loses at short
# schedules (with CE at 0.1, the KD and iCD gradients are several times the CE's):
# tools/analysis/logs/nc_icd_analysis.md.
_base_ = ['../_base_/distill/icd.py', './_base_/shapes16.py']

teacher_ckpt = 'work_dirs/cls_study/teacher/epoch_50.pth'  # configs/cls/synthetic/res20_teacher_synthetic.py
model = dict(
    architecture=dict(backbone=dict(type='CIFARResNet', arch='resnet8'), head=dict(num_classes=10, in_channels=64)),
    teacher=dict(backbone=dict(type='CIFARResNet', arch='resnet20'), head=dict(num_classes=10, in_channels=64)),
    teacher_ckpt=teacher_ckpt,
    distiller=dict(distill_losses=dict(loss_kd=dict(loss_weight=0.9), loss_icd=dict(loss_weight=2.0))))
# iCD's schedule (configs/cls/_base_/distill/cifar100_icd.py): batch 64, no Nesterov; lr 0.05 as the resnet pairs
optim_wrapper = dict(optimizer=dict(lr=0.05, nesterov=False))
auto_scale_lr = dict(base_batch_size=64)
# NC metrics of student and teacher after every validation (plot_study.py's NC picture)
custom_hooks = [dict(type='mmkd.DistillMetricsHook', min_per_class=30, max_batches=8)]
