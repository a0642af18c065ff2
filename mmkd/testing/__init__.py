"""Helpers shared by mmkd's tests (as ``mmdet.testing`` is for mmdet's)."""
from ._utils import randomise_batchnorms

__all__ = ['randomise_batchnorms']
