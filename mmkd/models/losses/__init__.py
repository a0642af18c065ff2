from .class_means_mixin import ClassMeansMixin
from .fgd_loss import FGDLoss
from .hcl_loss import HCLLoss
from .icd_loss import ICDLoss
from .icd_roi_loss import ICDRoILoss
from .nc_loss import NCLoss
from .nd_loss import NDLoss
from .sdd_kd_loss import SDDKDLoss

__all__ = ['ClassMeansMixin', 'FGDLoss', 'HCLLoss', 'ICDLoss', 'ICDRoILoss', 'NCLoss', 'NDLoss', 'SDDKDLoss']
