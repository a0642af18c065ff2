"""The lean classification path: classifier, global pooling neck and linear head (with iCD local logits)."""
from .gap_neck import GlobalAveragePooling
from .image_classifier import ImageClassifier
from .linear_head import LinearClsHead, stack_gt_labels
from .local_logits import LocalLogits, multi_scale_local_logits

__all__ = ['ImageClassifier', 'GlobalAveragePooling', 'LinearClsHead', 'LocalLogits', 'multi_scale_local_logits',
           'stack_gt_labels']
