from .class_means_hook import ClassMeansHook, compute_class_means
from .distill_metrics_hook import DistillMetricsHook

__all__ = ['ClassMeansHook', 'compute_class_means', 'DistillMetricsHook']
