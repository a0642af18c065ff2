"""mmkd: ND (KD++), NC-inspired and iCD knowledge distillation for MMDetection.

``compat`` is imported first: it makes mmrazor 1.0.0 and mmengine 0.10.7 work on torch 2.x before anything
imports them for real. Importing the sub-packages then registers every mmkd module.
"""
from . import compat  # noqa: F401  (must stay first)
from .version import __version__  # noqa: E402
from . import datasets, engine, evaluation, models, structures  # noqa: E402,F401

__all__ = ['__version__']
