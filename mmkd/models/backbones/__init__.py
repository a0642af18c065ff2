"""CIFAR backbones of the standard KD benchmark (ImageNet models reuse mmdet's ``ResNet``/``MobileNetV2``)."""
from .cifar_resnet import CIFARResNet
from .mobilenet_v2_cifar import CIFARMobileNetV2
from .shufflenet_v1 import CIFARShuffleNetV1
from .shufflenet_v2 import CIFARShuffleNetV2
from .wide_resnet import CIFARWideResNet

__all__ = ['CIFARResNet', 'CIFARWideResNet', 'CIFARShuffleNetV1', 'CIFARShuffleNetV2', 'CIFARMobileNetV2']
