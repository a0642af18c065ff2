from .cifar import CIFAR100  # noqa: F401
from .coco import CocoDataset  # noqa: F401
from .image_files import CheckedImageFiles, UnreadableImageError, image_file_problem  # noqa: F401
from .image_folder import CUB200, ImageNet  # noqa: F401
from .transforms import (ClsCenterCrop, ClsRandomCrop, ClsRandomResizedCrop, ClsResizeEdge,  # noqa: F401
                         PackClsInputs)
