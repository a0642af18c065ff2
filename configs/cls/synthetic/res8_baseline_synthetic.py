# resnet8 student trained alone: the baseline of the CPU classification study (tools/analysis/cls_study.py) on the
# synthetic shapes at 16x16, with the students' schedule (_base_/shapes16.py: 24 epochs, SGD lr 0.1 with x0.1 steps),
# chosen on this row on the held-out split (tools/analysis/logs/cls_study/schedule_tuning/README.md).
_base_ = ['../_base_/models/cifar100_classifier.py', './_base_/shapes16.py']

# neural-collapse metrics of the model after every validation (plot_study.py's NC picture)
custom_hooks = [dict(type='mmkd.DistillMetricsHook', min_per_class=30, max_batches=8)]
model = dict(backbone=dict(arch='resnet8'), head=dict(num_classes=10))
