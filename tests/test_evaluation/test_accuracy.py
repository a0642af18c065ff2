"""Top-k accuracy: the pure function and the metric inside mmengine's Evaluator."""
import pytest
import torch
from mmengine.evaluator import Evaluator
from mmengine.structures import BaseDataElement

import mmkd  # noqa: F401
from mmkd.evaluation import topk_accuracy
from mmkd.registry import METRICS


def test_topk_accuracy_counts_hits():
    scores = torch.tensor([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
    labels = torch.tensor([1, 1, 0, 2])
    top1, top2, top5 = topk_accuracy(scores, labels, (1, 2, 5))
    assert top1 == pytest.approx(25.0) and top2 == pytest.approx(50.0) and top5 == pytest.approx(100.0)
    with pytest.raises(ValueError, match=r'scores \[N, K\]'):
        topk_accuracy(scores, labels[:2])


def test_metric_through_evaluator():
    evaluator = Evaluator(METRICS.build(dict(type='Accuracy', topk=(1, 2))))
    preds = [BaseDataElement(pred_score=torch.tensor(s), gt_label=torch.tensor([y]))
             for s, y in (([0.9, 0.1, 0.0], 0), ([0.2, 0.5, 0.3], 2), ([0.1, 0.1, 0.8], 1))]
    evaluator.process(preds[:2])
    evaluator.process(preds[2:])
    res = evaluator.evaluate(3)
    assert res['accuracy/top1'] == pytest.approx(100 / 3) and res['accuracy/top2'] == pytest.approx(200 / 3)
    bad = Evaluator(METRICS.build(dict(type='Accuracy')))
    with pytest.raises(ValueError, match='pred_score'):
        bad.process([BaseDataElement(gt_label=torch.tensor([0]))])
