from . import algorithms, backbones, classifiers, connectors, losses, utils  # noqa: F401
