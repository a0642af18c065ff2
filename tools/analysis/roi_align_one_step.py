"""One training step with mmkd.ops.RoIAlign against the same step with mmcv's RoIAlign.

The demo's student alone (``configs/demo/faster_rcnn_r18_baseline.py``) is built twice from the same weights, once
with its ``mmkd.ops.RoIAlign`` extractor and once with mmdet's stock ``SingleRoIExtractor`` (mmcv's RoIAlign); each
computes one loss + backward on the same training batch, 1 thread. Printed: each model's losses and the largest
relative gradient difference over the parameters, ``|g_mmkd - g_mmcv| / |g_mmcv|`` (docs/reproducibility.md quotes
it: 5e-7 on the demo's data).

    python tools/analysis/roi_align_one_step.py [--data-root data/synthetic_coco/] [--batch-size 8]
"""
import argparse
import copy
import os.path as osp
import sys
from typing import Dict, Tuple

import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)  # this checkout's mmkd
import mmkd  # noqa: E402,F401
from mmdet.registry import MODELS  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

CONFIG = osp.join(REPO, 'configs/demo/faster_rcnn_r18_baseline.py')


def stock_model(model_cfg: Config) -> Config:
    """The same model config with mmdet's stock RoI extractor and mmcv's RoIAlign (sampling and sizes unchanged)."""
    stock = copy.deepcopy(model_cfg)
    ours = model_cfg.roi_head.bbox_roi_extractor
    stock.roi_head.bbox_roi_extractor = dict(type='SingleRoIExtractor', out_channels=ours.out_channels,
                                             featmap_strides=list(ours.get('featmap_strides', [4, 8, 16, 32])),
                                             roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=0))
    return stock


def one_step(model: torch.nn.Module, batch: dict) -> Dict[str, float]:
    """One loss + backward of ``model`` on ``batch`` (the sampler seeded the same for each model); its losses."""
    model.train()
    torch.manual_seed(1)
    data = model.data_preprocessor(copy.deepcopy(batch), True)
    losses = model.loss(data['inputs'], data['data_samples'])
    model.zero_grad()
    sum(v for k, v in losses.items() if 'loss' in k and torch.is_tensor(v)).backward()
    return {k: float(v) for k, v in losses.items() if torch.is_tensor(v) and v.numel() == 1}


def largest_grad_difference(a: torch.nn.Module, b: torch.nn.Module) -> Tuple[float, str, int]:
    """max over parameters of ``||g_a - g_b|| / (||g_b|| + 1e-12)``, its parameter name, and how many were compared
    (the parameters with a gradient in ``b``; both modules must have the same parameter names)."""
    grads = {n: q.grad for n, q in b.named_parameters() if q.grad is not None}
    worst = max((((q.grad - grads[n]).norm() / (grads[n].norm() + 1e-12)).item(), n)
                for n, q in a.named_parameters() if n in grads and q.grad is not None)
    return worst[0], worst[1], len(grads)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--data-root', default='data/synthetic_coco/',
                   help='the demo\'s generated data (make demo makes it)')
    p.add_argument('--batch-size', type=int, default=8, help='training images in the step (the demo trains with 8)')
    args = p.parse_args(argv)
    init_default_scope('mmdet')
    torch.set_num_threads(1)
    cfg = Config.fromfile(CONFIG)
    torch.manual_seed(0)
    ours = MODELS.build(cfg.model)
    ours.init_weights()
    theirs = MODELS.build(stock_model(cfg.model))
    theirs.load_state_dict(ours.state_dict())
    cfg.train_dataloader.dataset.data_root = osp.join(args.data_root, '')
    cfg.train_dataloader.batch_size = args.batch_size
    batch = next(iter(Runner.build_dataloader(cfg.train_dataloader, seed=0)))
    losses = {}
    for name, model in (('mmkd', ours), ('mmcv', theirs)):
        losses[name] = one_step(model, batch)
        print(type(model.roi_head.bbox_roi_extractor.roi_layers[0]).__module__,
              {k: round(v, 7) for k, v in losses[name].items()})
    worst, where, n = largest_grad_difference(ours, theirs)
    print(f'{n} parameters with a gradient; largest relative difference {worst:.1e} ({where})')
    return dict(losses=losses, worst=worst, parameter=where, num_params=n)


if __name__ == '__main__':
    main()
