"""Top-k accuracy for the lean classification path."""
from typing import Dict, List, Optional, Sequence, Union

import torch
from mmengine.evaluator import BaseMetric

from mmkd.registry import METRICS


def topk_accuracy(scores: torch.Tensor, labels: torch.Tensor, topk: Sequence[int] = (1, )) -> List[float]:
    """Percentage of rows whose label is among the ``k`` highest scores, for every ``k`` in ``topk``.

    Args:
        scores: ``[N, K]`` class scores (logits or probabilities).
        labels: ``[N]`` ground-truth class ids.
        topk: the ``k`` values; each is capped at ``K``.

    Returns:
        One accuracy in ``[0, 100]`` per ``k``.
    """
    if scores.dim() != 2 or labels.shape != scores.shape[:1]:
        raise ValueError(f'topk_accuracy: need scores [N, K] and labels [N], got {tuple(scores.shape)} and '
                         f'{tuple(labels.shape)}.')
    maxk = min(max(topk), scores.shape[1])
    hits = scores.topk(maxk, dim=1).indices == labels[:, None]  # [N, maxk]
    return [hits[:, :min(k, maxk)].any(dim=1).float().mean().item() * 100 for k in topk]


@METRICS.register_module()
class Accuracy(BaseMetric):
    """Top-k accuracy (%) of ``pred_score`` against ``gt_label``, reported as ``accuracy/top{k}``.

    Args:
        topk: the ``k`` values, e.g. ``(1, 5)``.
        collect_device: 'cpu' or 'gpu' for gathering results across ranks.
        prefix: key prefix; 'accuracy' by default (mmpretrain's naming).
    """

    default_prefix: Optional[str] = 'accuracy'

    def __init__(self, topk: Union[int, Sequence[int]] = (1, ), collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.topk = (topk, ) if isinstance(topk, int) else tuple(topk)
        if not self.topk or any(not isinstance(k, int) or k < 1 for k in self.topk):
            raise ValueError(f'Accuracy: topk must be positive ints, got {topk}.')

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for ds in data_samples:
            if 'pred_score' not in ds or 'gt_label' not in ds:
                raise ValueError("Accuracy needs 'pred_score' and 'gt_label' in every prediction; evaluate a model "
                                 "whose 'predict' mode fills pred_score (e.g. ImageClassifier).")
            self.results.append((ds['pred_score'].cpu(), ds['gt_label'].reshape(-1)[0].cpu()))

    def compute_metrics(self, results: list) -> Dict[str, float]:
        scores = torch.stack([r[0] for r in results])
        labels = torch.stack([r[1] for r in results]).long()
        return {f'top{k}': acc for k, acc in zip(self.topk, topk_accuracy(scores, labels, self.topk))}
