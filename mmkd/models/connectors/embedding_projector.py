"""Student embedding projector of KD++ (width mismatch between student and teacher embeddings)."""
from typing import Optional

from mmrazor.models.architectures.connectors.base_connector import BaseConnector
from torch import Tensor, nn

from mmkd.registry import MODELS


@MODELS.register_module()
class EmbeddingProjector(BaseConnector):
    """``BatchNorm1d(in) -> Dropout(p) -> Linear(in -> out)`` on the student embedding, as KD++'s ``EmbTrans``
    (Wang et al., arXiv 2305.17007; docs/methods.md 1(c)). Trained by the distillation loss only and dropped at
    inference (it lives in ``distiller.connectors``).

    Init: BN weight 1, bias 0; Linear bias 0 and PyTorch's default weight init (the CIFAR variant).

    Args:
        in_channels: student embedding width ``D_s``.
        out_channels: teacher embedding width ``D_t``.
        dropout: dropout probability.
        init_cfg: mmengine init config (overrides the init above when given).

    Forward:
        ``[N, D_s] -> [N, D_t]``.
    """

    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.5,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg)
        self.bn = nn.BatchNorm1d(in_channels)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(in_channels, out_channels)
        nn.init.ones_(self.bn.weight)
        nn.init.zeros_(self.bn.bias)
        nn.init.zeros_(self.fc.bias)

    def forward_train(self, feature: Tensor) -> Tensor:
        if feature.dim() != 2 or feature.shape[1] != self.bn.num_features:
            raise ValueError(f'EmbeddingProjector expects pooled embeddings [N, {self.bn.num_features}], got '
                             f'{list(feature.shape)}; pool / flatten the feature first or fix in_channels')
        return self.fc(self.dropout(self.bn(feature)))
