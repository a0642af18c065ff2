"""The lean image classifier: backbone -> global pooling -> linear head, on mmengine's BaseModel."""
from typing import Dict, List, Optional, Union

import torch
from mmengine.model import BaseModel
from mmengine.structures import BaseDataElement

from mmkd.registry import MODELS


@MODELS.register_module()
class ImageClassifier(BaseModel):
    """mmpretrain-like classifier: ``logits = head.fc(neck(backbone(x)[-1]))``.

    Module paths (for mmrazor recorders): ``backbone`` (tuple of maps), ``neck`` (penultimate feature ``[B, C]``),
    ``head.fc`` (logits ``[B, K]``), ``head.loss_module`` (inputs ``(logits, labels)``), ``head.local_logits``
    (iCD/SDD local logits ``[B, K, P]``, when the head has ``local_scales``).

    ``forward(inputs [B, 3, H, W], data_samples, mode)``:

    * ``'loss'``: ``dict(loss_cls=...)``; data samples carry ``gt_label`` LongTensors;
    * ``'predict'``: the data samples with ``pred_score`` ``[K]`` and ``pred_label`` ``[1]``;
    * ``'tensor'``: logits ``[B, K]``.

    Args:
        backbone: backbone config (e.g. ``CIFARResNet`` or ``mmdet.ResNet``) returning a tuple of maps.
        head: head config (``LinearClsHead``).
        neck: neck config; ``GlobalAveragePooling`` by default.
        data_preprocessor: e.g. mmengine's ``ImgDataPreprocessor`` with the dataset's mean/std.
        init_cfg: mmengine init config.
    """

    def __init__(self, backbone: dict, head: dict, neck: Optional[dict] = dict(type='GlobalAveragePooling'),
                 data_preprocessor: Optional[Union[dict, torch.nn.Module]] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        self.neck = MODELS.build(neck)
        self.head = MODELS.build(head)

    def extract_feat(self, inputs: torch.Tensor) -> torch.Tensor:
        """Penultimate feature ``[B, C]`` (no head)."""
        return self.neck(self.backbone(inputs))

    def forward(self, inputs: torch.Tensor, data_samples: Optional[List[BaseDataElement]] = None,
                mode: str = 'tensor') -> Union[Dict[str, torch.Tensor], List[BaseDataElement], torch.Tensor]:
        if mode not in ('loss', 'predict', 'tensor'):
            raise ValueError(f"ImageClassifier: mode must be 'loss', 'predict' or 'tensor', got {mode!r}.")
        maps = self.backbone(inputs)
        feat = self.neck(maps)
        if mode == 'loss':
            if data_samples is None:
                raise ValueError("ImageClassifier: mode='loss' needs data_samples with `gt_label`.")
            return self.head.loss(feat, maps[-1], data_samples)
        if mode == 'predict':
            return self.head.predict(feat, data_samples)
        return self.head(feat, maps[-1])
