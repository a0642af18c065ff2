from . import algorithms, backbones, classifiers, connectors, losses  # noqa: F401
