"""Time mmkd's CPU RoIAlign (``mmkd.ops.RoIAlign``) against mmcv's, side by side in one run, and check that they
agree: the median wall time of forward and of forward + backward over ``--repeats`` runs (after ``--warmup``),
their ratio, each one's largest output difference from mmcv's RoIAlign computed in float64 (float64 sample points,
the float32 sample count of mmcv's rule: the float64 arithmetic's result), the largest difference between their
outputs (mmkd computes mmcv's float32 steps: 0 up to an ulp) and between their input gradients.

Sizes: ``demo`` = the demo's Faster R-CNN step (8 images of 64x64, P2 16x16, 64 channels, 8 x 32 sampled RoIs of
the generated objects' sizes); ``coco`` = one 1333x800 image's P2 (200x336, 256 channels) with 512 RoIs of 8-56 px
(the sizes mmdet maps to P2).

    python tools/analysis/benchmark_roi_align.py --threads 1
"""
import argparse
import os.path as osp
import statistics
import sys
import timeit

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # this checkout's mmkd
from mmcv.ops import RoIAlign as MMCVRoIAlign  # noqa: E402

from mmkd.ops import RoIAlign  # noqa: E402

STRIDE = 4  # P2's: RoIs in image pixels, the map at 1/4 of the image
SIZES = dict(demo=dict(images=8, channels=64, height=16, width=16, rois=256, box=(16, 48)),
             coco=dict(images=1, channels=256, height=200, width=336, rois=512, box=(8, 56)))


def inputs(images, channels, height, width, rois, box, seed=0):
    """Random P2 features and RoIs of ``box`` = (min, max) side in image pixels, inside the image."""
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(images, channels, height, width, generator=g)
    lo, hi = box
    wh = lo + torch.rand(rois, 2, generator=g) * (hi - lo)
    xy = torch.rand(rois, 2, generator=g) * (torch.tensor([width, height]) * STRIDE - wh)
    index = torch.randint(0, images, (rois, 1), generator=g).float()
    return feats, torch.cat([index, xy, xy + wh], 1)


def median_ms(fn, repeats, warmup):
    timeit.repeat(fn, number=1, repeat=warmup)
    return statistics.median(timeit.repeat(fn, number=1, repeat=repeats)) * 1e3


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--sizes', nargs='+', default=list(SIZES), choices=list(SIZES))
    p.add_argument('--repeats', type=int, default=20)
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--threads', type=int, help='torch threads (default: torch\'s)')
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f'torch {torch.__version__}, {torch.get_num_threads()} thread(s); median ms of {args.repeats} runs')
    print('| size | mmcv fwd | mmkd fwd | ratio | mmcv fwd+bwd | mmkd fwd+bwd | ratio | out: mmcv - f64 | '
          'out: mmkd - f64 | out: mmkd - mmcv | grad: mmkd - mmcv |')
    print('|---|---|---|---|---|---|---|---|---|---|---|')
    for name in args.sizes:
        feats, rois = inputs(**SIZES[name])
        exact = MMCVRoIAlign(7, 1 / STRIDE, 0)(feats.double(), rois.double())
        layers = dict(mmcv=MMCVRoIAlign(7, 1 / STRIDE, 0), mmkd=RoIAlign(7, 1 / STRIDE, 0))
        fwd, both, outs, grads = {}, {}, {}, {}
        for key, layer in layers.items():
            x = feats.clone().requires_grad_()
            with torch.no_grad():
                fwd[key] = median_ms(lambda: layer(x, rois), args.repeats, args.warmup)
            both[key] = median_ms(lambda: layer(x, rois).sum().backward(), args.repeats, args.warmup)
            x.grad = None
            out = layer(x, rois)
            out.backward(torch.ones_like(out))
            outs[key], grads[key] = out.detach(), x.grad
        print(f'| {name} | {fwd["mmcv"]:.2f} | {fwd["mmkd"]:.2f} | {fwd["mmcv"] / fwd["mmkd"]:.1f}x | '
              f'{both["mmcv"]:.2f} | {both["mmkd"]:.2f} | {both["mmcv"] / both["mmkd"]:.1f}x | '
              f'{(outs["mmcv"] - exact).abs().max():.1e} | {(outs["mmkd"] - exact).abs().max():.1e} | '
              f'{(outs["mmkd"] - outs["mmcv"]).abs().max():.1e} | {(grads["mmkd"] - grads["mmcv"]).abs().max():.1e} |',
              flush=True)


if __name__ == '__main__':
    main()
