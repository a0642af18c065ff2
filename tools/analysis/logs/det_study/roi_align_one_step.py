"""The check quoted as "one training step: the same losses, every gradient within 5e-7": the demo's student alone
(configs/demo/faster_rcnn_r18_baseline.py) built twice from the same weights, once with its mmkd.ops.RoIAlign and
once with mmdet's stock extractor (mmcv's RoIAlign), one loss + backward on the same training batch, 1 thread.

    python tools/analysis/logs/det_study/roi_align_one_step.py [--data-root data/synthetic_coco/]
"""
import argparse
import copy
import os.path as osp
import sys

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))))
import mmkd  # noqa: E402,F401
from mmdet.registry import MODELS  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument('--data-root', default='data/synthetic_coco/', help='the demo\'s generated data (make demo makes it)')
args = p.parse_args()
init_default_scope('mmdet')
torch.set_num_threads(1)
cfg = Config.fromfile('configs/demo/faster_rcnn_r18_baseline.py')
stock = copy.deepcopy(cfg.model)
stock.roi_head.bbox_roi_extractor = dict(type='SingleRoIExtractor', out_channels=64, featmap_strides=[4, 8, 16, 32],
                                         roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=0))
torch.manual_seed(0)
ours = MODELS.build(cfg.model)
ours.init_weights()
theirs = MODELS.build(stock)
theirs.load_state_dict(ours.state_dict())
cfg.train_dataloader.dataset.data_root = args.data_root
batch = next(iter(Runner.build_dataloader(cfg.train_dataloader, seed=0)))
for model in (ours, theirs):
    model.train()
    torch.manual_seed(1)
    data = model.data_preprocessor(copy.deepcopy(batch), True)
    losses = model.loss(data['inputs'], data['data_samples'])
    model.zero_grad()
    sum(v for k, v in losses.items() if 'loss' in k and torch.is_tensor(v)).backward()
    print(type(model.roi_head.bbox_roi_extractor.roi_layers[0]).__module__,
          {k: round(float(v), 7) for k, v in losses.items() if torch.is_tensor(v) and v.numel() == 1})
grads = {n: q.grad for n, q in theirs.named_parameters() if q.grad is not None}
worst = max((((q.grad - grads[n]).norm() / (grads[n].norm() + 1e-12)).item(), n)
            for n, q in ours.named_parameters() if q.grad is not None)
print(f'{len(grads)} parameters with a gradient; largest relative difference {worst[0]:.1e} ({worst[1]})')
