"""mmkd.ops.RoIAlign's outputs and input gradients from one checkout, saved for a bitwise comparison with another's.

    python tools/analysis/roi_align_bitwise.py save CHECKOUT_A a.pt     # that checkout's mmkd, not the installed one
    python tools/analysis/roi_align_bitwise.py save CHECKOUT_B b.pt
    python tools/analysis/roi_align_bitwise.py compare a.pt b.pt      # one True/False per tensor; exit 1 if any differ

The cases (random features and RoIs, seed 0): a demo step's P2 (8 x 64 x 16 x 16, 256 RoIs), a coarser level
(8 x 64 x 8 x 8, 100 RoIs) and a 1333x800 image's P4 (8 x 256 x 50 x 84, 512 RoIs); for each, the output and the
gradient of a random output gradient with respect to the features. docs/studies/detection.md uses it to show that
the 6-class data study's checkout (033d170) computes RoIAlign bitwise as the later main did.
"""
import argparse
import importlib
import os.path as osp
import sys
from typing import List, Sequence, Tuple

import torch

#: (H, W, C, number of RoIs, spatial scale)
CASES = [(16, 16, 64, 256, 0.25), (8, 8, 64, 100, 0.125), (50, 84, 256, 512, 0.0625)]


def compute(roi_align_cls, cases: Sequence[Tuple[int, int, int, int, float]] = CASES, batch: int = 8
            ) -> List[torch.Tensor]:
    """For each case: RoIAlign's output and the features' gradient, [out_0, grad_0, out_1, grad_1, ...]."""
    torch.manual_seed(0)
    outs = []
    for (H, W, C, n, scale) in cases:
        x = torch.randn(batch, C, H, W, requires_grad=True)
        xy = torch.rand(n, 2) * torch.tensor([W, H]) / scale * 0.8
        wh = torch.rand(n, 2) * 40
        rois = torch.cat([torch.randint(0, batch, (n, 1)).float(), xy, xy + wh], 1)
        y = roi_align_cls((7, 7), scale, 0, aligned=True)(x, rois)
        y.backward(torch.randn_like(y))
        outs += [y.detach(), x.grad]
    return outs


def compare(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> List[bool]:
    """``torch.equal`` of each pair (bitwise: same shape, same values); a missing tensor counts as different."""
    return [torch.equal(x, y) for x, y in zip(a, b)] + [False] * abs(len(a) - len(b))


def load_roi_align(checkout: str):
    """``mmkd.ops.RoIAlign`` imported from ``checkout`` (put first on the path, before any installed mmkd); refused
    when this process already imported mmkd from elsewhere."""
    checkout = osp.realpath(checkout)
    sys.path.insert(0, checkout)
    ops = importlib.import_module('mmkd.ops')
    if not osp.realpath(ops.__file__).startswith(osp.join(checkout, '')):
        raise RuntimeError(f'mmkd.ops came from {ops.__file__}, not from {checkout}: run this script in a fresh '
                           'process for each checkout')
    return ops.RoIAlign


def main(argv=None) -> List[bool]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest='cmd', required=True)
    s = sub.add_parser('save', help='compute with CHECKOUT\'s mmkd and save the tensors to OUT')
    s.add_argument('checkout')
    s.add_argument('out')
    c = sub.add_parser('compare', help='compare two saved files bitwise')
    c.add_argument('a')
    c.add_argument('b')
    args = p.parse_args(argv)
    if args.cmd == 'save':
        torch.save(compute(load_roi_align(args.checkout)), args.out)
        return []
    same = compare(torch.load(args.a), torch.load(args.b))
    print(same)
    if not all(same):
        raise SystemExit(1)
    return same


if __name__ == '__main__':
    main()
