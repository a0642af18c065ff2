"""mmkd.ops.RoIAlign's outputs and input gradients from one checkout, saved for a bitwise comparison with another's:

    python roi_align_bitwise.py <checkout A> a.pt && python roi_align_bitwise.py <checkout B> b.pt
    python -c "import torch; print([torch.equal(x, y) for x, y in zip(torch.load('a.pt'), torch.load('b.pt'))])"

Used for this folder's study (checkout 033d170 against 2026-12-07's main: all True).
"""
import sys

import torch

sys.path.insert(0, sys.argv[1])  # that checkout's mmkd, not the installed one
from mmkd.ops import RoIAlign  # noqa: E402

torch.manual_seed(0)
outs = []
for (H, W, C, n, scale) in [(16, 16, 64, 256, 0.25), (8, 8, 64, 100, 0.125), (50, 84, 256, 512, 0.0625)]:
    x = torch.randn(8, C, H, W, requires_grad=True)
    xy = torch.rand(n, 2) * torch.tensor([W, H]) / scale * 0.8
    wh = torch.rand(n, 2) * 40
    rois = torch.cat([torch.randint(0, 8, (n, 1)).float(), xy, xy + wh], 1)
    y = RoIAlign((7, 7), scale, 0, aligned=True)(x, rois)
    y.backward(torch.randn_like(y))
    outs += [y.detach(), x.grad]
torch.save(outs, sys.argv[2])
