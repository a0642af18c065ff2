# [PROPOSAL] NC-inspired distillation on CIFAR-100 (after NCKD, Zhang et al., AAAI 2025): CE + NCLoss
# (prototype contrast + prototype alignment + ETF/Gram transfer against the teacher's class means; methods.md
# 2(b)). This is mmkd's reconstruction, not the authors' equations; the paper's weights are unknown, so every term
# has weight 1 (the suggested starting point). Term-by-term check against methods.md and measured gradient scales:
# tools/analysis/logs/nc_icd_analysis.md.
_base_ = [
    '../models/cifar100_cls_distill.py', '../datasets/cifar100.py', '../schedules/cifar100_240e.py',
    '../default_runtime.py'
]

model = dict(
    class_means=dict(num_classes=100, feat_dim=None),  # feat_dim = the teacher's width
    distiller=dict(
        # ClsDistill adds the recorders feat (neck), logits (head.fc) and, for the student, labels (head.loss_module)
        distill_losses=dict(
            loss_nc=dict(type='NCLoss', loss_weight=1.0, contrast_weight=1.0, align_weight=1.0, nc2_weight=1.0,
                         nc3_weight=0.0, tau=0.1)),
        loss_forward_mappings=dict(
            loss_nc=dict(
                student_feat=dict(recorder='feat', from_student=True),
                labels=dict(recorder='labels', from_student=True, data_idx=1)))))
custom_hooks = [dict(type='ClassMeansHook')]
