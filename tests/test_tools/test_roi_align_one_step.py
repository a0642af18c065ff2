"""tools/analysis/roi_align_one_step.py: one demo-student step with mmkd's and mmcv's RoIAlign, on 2 tiny images."""
import importlib.util
import os.path as osp

import pytest
import torch

from mmkd.datasets.synthetic import generate_coco_detection

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
_spec = importlib.util.spec_from_file_location('roi_align_one_step',
                                               osp.join(REPO, 'tools/analysis/roi_align_one_step.py'))
one_step = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(one_step)


def test_largest_grad_difference_by_hand():
    a, b = torch.nn.Linear(2, 1, bias=False), torch.nn.Linear(2, 1, bias=False)
    a.weight.grad = torch.tensor([[3.0, 4.0]])
    b.weight.grad = torch.tensor([[3.0, 4.5]])  # |(0, -0.5)| / |(3, 4.5)| = 0.5 / 5.408
    worst, name, n = one_step.largest_grad_difference(a, b)
    assert (name, n) == ('weight', 1)
    assert worst == pytest.approx(0.5 / (3.0 ** 2 + 4.5 ** 2) ** 0.5)


def test_stock_model_swaps_only_the_extractor():
    from mmengine.config import Config
    cfg = Config.fromfile(one_step.CONFIG)
    stock = one_step.stock_model(cfg.model)
    ext = stock.roi_head.bbox_roi_extractor
    assert ext['type'] == 'SingleRoIExtractor' and ext['roi_layer']['type'] == 'RoIAlign'
    assert ext['out_channels'] == cfg.model.roi_head.bbox_roi_extractor.out_channels == 64
    assert 'mmkd' in cfg.model.roi_head.bbox_roi_extractor.roi_layer.type  # the original is untouched
    assert stock.backbone == cfg.model.backbone


def test_one_step_same_losses_and_gradients(tmp_path):
    """The two RoIAligns compute the same numbers: losses equal to float rounding, gradients within 1e-4."""
    root = generate_coco_detection(tmp_path / 'data', num_train=4, num_val=2, img_size=64, num_classes=4,
                                   min_object_size=16)['data_root']
    out = one_step.main(['--data-root', root, '--batch-size', '2'])
    assert out['num_params'] > 50
    assert 0 <= out['worst'] < 1e-4
    mmkd_losses, mmcv_losses = out['losses']['mmkd'], out['losses']['mmcv']
    assert set(mmkd_losses) == set(mmcv_losses) and 'loss_cls' in mmkd_losses
    for k, v in mmkd_losses.items():
        assert v == pytest.approx(mmcv_losses[k], rel=1e-5, abs=1e-6), k
