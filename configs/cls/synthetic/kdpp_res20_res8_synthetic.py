# KD++ resnet20 -> resnet8 (CE 1 + KD 1.0, T=4 + ND 2.0, as configs/cls/cifar100/kdpp_res56_res20.py) for the CPU
# classification study (tools/analysis/cls_study.py) on the synthetic 32x32 shapes set: 6 epochs of batch 64, lr 0.1
# with cosine decay, no KD warm-up (KD++'s 20 of 240 epochs rounds to none at this length).
_base_ = ['../cifar100/kdpp_res56_res20.py']

data_root = 'data/synthetic_cifar'
# shown when the data is missing, instead of how to download CIFAR-100
_hint = ('Generate it with: python tools/misc/generate_synthetic_data.py cls --out {data_root} '
            '--num-train 10000 --num-val 5000 (tools/analysis/cls_study.py generates it itself)')
teacher_ckpt = 'work_dirs/cls_study/teacher/epoch_18.pth'  # configs/cls/synthetic/res20_teacher_synthetic.py
max_epochs = 6
train_dataloader = dict(num_workers=0, persistent_workers=False, dataset=dict(data_root=data_root, missing_hint=_hint))
val_dataloader = dict(num_workers=0, persistent_workers=False, dataset=dict(data_root=data_root, missing_hint=_hint))
test_dataloader = val_dataloader
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = dict(_delete_=True, type='CosineAnnealingLR', by_epoch=True, T_max=max_epochs, end=max_epochs,
                       convert_to_iter_based=True)
default_hooks = dict(checkpoint=dict(interval=max_epochs))
model = dict(
    architecture=dict(backbone=dict(arch='resnet8'), head=dict(num_classes=10)),
    teacher=dict(backbone=dict(arch='resnet20'), head=dict(num_classes=10)),
    class_means=dict(num_classes=10), loss_warmup=None, teacher_ckpt=teacher_ckpt)
# NC metrics of student and teacher after every validation (plot_study.py's NC picture)
custom_hooks = [dict(type='ClassMeansHook'), dict(type='mmkd.DistillMetricsHook', min_per_class=30, max_batches=8)]
del _hint
