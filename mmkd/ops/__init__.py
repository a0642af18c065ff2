"""Operators mmcv has, with what mmkd needs of them on a CPU (see each module)."""
from .roi_align import RoIAlign, roi_align_cpu

__all__ = ['RoIAlign', 'roi_align_cpu']
