from .class_means_mixin import ClassMeansMixin
from .icd_loss import ICDLoss
from .icd_roi_loss import ICDRoILoss
from .nc_loss import NCLoss
from .nd_loss import NDLoss

__all__ = ['ClassMeansMixin', 'ICDLoss', 'ICDRoILoss', 'NCLoss', 'NDLoss']
