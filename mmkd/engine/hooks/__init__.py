from .class_means_hook import ClassMeansHook, compute_class_means

__all__ = ['ClassMeansHook', 'compute_class_means']
