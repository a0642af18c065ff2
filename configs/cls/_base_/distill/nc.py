# [PROPOSAL] NC-inspired distillation (after NCKD, Zhang et al., AAAI 2025): CE + NCLoss
# (prototype contrast + prototype alignment + ETF/Gram transfer against the teacher's class means;
# docs/methods.md 2(b)). This is mmkd's reconstruction, not the authors' equations; the paper's weights are unknown,
# so every term has weight 1 (the suggested starting point). Term-by-term check against docs/methods.md and measured
# gradient scales:
# tools/analysis/logs/nc_icd_analysis.md.
# The method only (model and hooks, no data or schedule): cifar100_nc.py adds CIFAR-100, its 240-epoch schedule and
# the runtime; configs/cls/synthetic/ adds the generated shapes set instead.
_base_ = ['../models/cifar100_cls_distill.py', './cls_losses.py']

model = dict(
    class_means=dict(num_classes=100, feat_dim=None),  # feat_dim = the teacher's width
    distiller=_base_.nc_distiller)
custom_hooks = [dict(type='ClassMeansHook')]
