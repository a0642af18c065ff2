from . import algorithms, backbones, classifiers, connectors, losses, roi_heads, utils  # noqa: F401
