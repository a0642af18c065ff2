"""Global average pooling neck of the lean classification path."""
from typing import Sequence, Union

import torch
from mmengine.model import BaseModule

from mmkd.registry import MODELS


@MODELS.register_module()
class GlobalAveragePooling(BaseModule):
    """Global average pooling of the last backbone feature map: ``[B, C, H, W] -> [B, C]``.

    Its output is the classifier's penultimate feature ("embedding" in KD++, Wang et al., ECCV 2024), so a
    ``ModuleOutputs`` recorder on ``neck`` reads exactly the tensor ND and the NC losses need. Given the backbone's
    tuple of maps, only the last one is pooled.
    """

    def forward(self, inputs: Union[torch.Tensor, Sequence[torch.Tensor]]) -> torch.Tensor:
        x = inputs if isinstance(inputs, torch.Tensor) else inputs[-1]
        if x.dim() != 4:
            raise ValueError(f'GlobalAveragePooling expects a [B, C, H, W] feature map, got shape {tuple(x.shape)}.')
        return x.mean(dim=(2, 3))
