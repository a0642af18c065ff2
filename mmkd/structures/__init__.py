from .class_means import ClassMeans
from .nc_metrics import nc1, nc2, nc3

__all__ = ['ClassMeans', 'nc1', 'nc2', 'nc3']
