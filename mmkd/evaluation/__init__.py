"""Metrics of mmkd's classification path (detection uses mmdet's CocoMetric)."""
from .accuracy import Accuracy, topk_accuracy

__all__ = ['Accuracy', 'topk_accuracy']
