"""Linear classification head of the lean classification path."""
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.model import BaseModule
from mmengine.structures import BaseDataElement
from torch import nn

from mmkd.registry import MODELS
from .local_logits import LocalLogits


def stack_gt_labels(data_samples: Sequence[BaseDataElement]) -> torch.Tensor:
    """Concatenate the ``gt_label`` fields (each a LongTensor of shape ``[1]`` or ``[]``) into ``[B]``."""
    if not data_samples or any('gt_label' not in ds for ds in data_samples):
        raise ValueError('Classification needs one data sample with a `gt_label` field per image; pack the inputs '
                         'with `PackClsInputs` (or give each BaseDataElement `gt_label=torch.tensor([y])`).')
    return torch.cat([ds.gt_label.reshape(-1) for ds in data_samples]).long()


@MODELS.register_module()
class LinearClsHead(BaseModule):
    """``logits = fc(feat)`` with ``fc: Linear(in_channels, num_classes)``, trained with ``loss_module``.

    Module boundaries for distillation recorders (mmrazor ``ModuleOutputs``/``ModuleInputs``):

    * ``fc``: output = logits ``[B, K]`` (called once per forward);
    * ``loss_module``: called as ``loss_module(logits, labels)``, so its input ``data_idx=1`` is the labels ``[B]``;
    * ``local_logits`` (only when ``local_scales`` is set, e.g. ``(1, 2, 4)`` for iCD/SDD): output = the local
      logits ``[B, K, P]`` of the last feature map, computed with the same ``fc`` weights. It runs only while
      ``compute_local`` is True, which the distillation algorithm turns off when no recorder reads it.

    Args:
        num_classes: K.
        in_channels: width C of the pooled feature.
        loss: config of the classification loss (mmdet's ``CrossEntropyLoss`` by default; mmrazor's
            ``CrossEntropyLoss`` is a distillation loss, hence the explicit scope).
        local_scales: grid sizes of the multi-scale local logits, or None for none.
        init_cfg: mmengine init config of the head (PyTorch's Linear init by default, as the reference code).
    """

    def __init__(self, num_classes: int, in_channels: int,
                 loss: dict = dict(type='mmdet.CrossEntropyLoss', loss_weight=1.0),
                 local_scales: Optional[Sequence[int]] = None, init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if num_classes < 1 or in_channels < 1:
            raise ValueError(f'LinearClsHead: num_classes and in_channels must be positive, got {num_classes} and '
                             f'{in_channels}.')
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.fc = nn.Linear(in_channels, num_classes)
        self.loss_module = MODELS.build(loss)
        self.local_logits = LocalLogits(local_scales) if local_scales is not None else None
        self.compute_local = self.local_logits is not None

    def forward(self, feat: torch.Tensor, feat_map: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``feat [B, C]`` (and the last map ``[B, C, H, W]`` for the local logits) -> logits ``[B, K]``."""
        logits = self.fc(feat)
        if self.compute_local and feat_map is not None:
            self.local_logits(feat_map, self.fc.weight, self.fc.bias)
        return logits

    def loss(self, feat: torch.Tensor, feat_map: Optional[torch.Tensor],
             data_samples: List[BaseDataElement]) -> Dict[str, torch.Tensor]:
        """Returns ``dict(loss_cls=loss_module(logits, labels))``."""
        labels = stack_gt_labels(data_samples).to(feat.device)
        return dict(loss_cls=self.loss_module(self(feat, feat_map), labels))

    def predict(self, feat: torch.Tensor,
                data_samples: Optional[List[BaseDataElement]] = None) -> List[BaseDataElement]:
        """Adds ``pred_score`` (softmax ``[K]``) and ``pred_label`` (``[1]``) to each data sample."""
        scores = self.fc(feat).softmax(dim=1).detach()
        labels = scores.argmax(dim=1, keepdim=True)
        data_samples = data_samples or [BaseDataElement() for _ in range(len(scores))]
        for ds, score, label in zip(data_samples, scores, labels):
            ds.set_field(score, 'pred_score')
            ds.set_field(label, 'pred_label')
        return data_samples
