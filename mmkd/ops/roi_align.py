"""RoIAlign with a fast CPU path: mmcv's ``RoIAlign`` (average pooling), computed on the CPU by two compiled
kernels over channels-last features instead of mmcv's CPU kernels.

Why: on a CPU, mmcv 2.1.0's RoIAlign is a quarter of a Faster R-CNN training step at the study's sizes (its
backward recomputes every sample's bilinear weights once per channel). The same arithmetic over channels-last
features, one RoI bin at a time with the channel loop innermost, is about 8x faster forward + backward
(``tools/analysis/benchmark_roi_align.py``). Everything else (CUDA tensors, ``pool_mode='max'``, dtypes other than
float32/float64, ``use_torchvision``) goes to mmcv unchanged.

The math is mmcv's (``mmcv/ops/csrc/pytorch/cpu/roi_align.cpp``, pool_mode avg), for an RoI ``(b, x1, y1, x2, y2)``
in image coordinates, ``s = spatial_scale``, ``o = 0.5`` if ``aligned`` else 0 and a ``PH x PW`` output::

    x0 = x1 * s - o,  w = (x2 * s - o) - x0   (w = max(w, 1) if not aligned; the same for y0, h)
    grid_h = sampling_ratio if > 0 else ceil(float32(h / PH))   (grid_w likewise)
    out[c, ph, pw] = (sum over iy < grid_h, ix < grid_w of
                      bilinear(feats[b, c], y0 + ph * h / PH + (iy + .5) * (h / PH) / grid_h,
                                            x0 + pw * w / PW + (ix + .5) * (w / PW) / grid_w))
                     / max(grid_h * grid_w, 1)

where ``bilinear`` is 0 for a point with y < -1, y > H, x < -1 or x > W, clamps the point to >= 0 and takes the
border row/column when it is past the last one. Shapes: feats ``(B, C, H, W)``, rois ``(R, 5)`` -> ``(R, C, PH, PW)``;
no gradient flows to the RoIs (as in mmcv).

Every step is rounded where mmcv's kernel rounds it, so that the kernels compute mmcv's numbers and not merely
numbers close to them: each operation above in the features' dtype (float32 or float64) in mmcv's order, ``s``
first rounded to float32 (mmcv takes it as a C ``float``), and the adaptive grid from a float32 ``ceilf`` of
``h / PH`` for float64 features too. Rounding decides there: a box whose scaled size is, in float32, an exact
multiple of the output size (x 3.7 -> 31.7 at ``s`` 1/4, aligned) gets one sample per bin fewer than float64
arithmetic gives it, and a sample point's rounded coordinate decides whether it is on the map. The forward is
then mmcv's sums in mmcv's order; the backward divides the bilinear weights by the sample count once per sample
where mmcv divides per channel (within an ulp). At COCO's P2 (coordinates in the hundreds) float32 arithmetic puts
mmcv's output, and so these kernels', up to ~1e-4 from float64's.
"""
import warnings
from typing import Tuple, Union

import numpy as np
import torch
from mmcv.ops import RoIAlign as MMCVRoIAlign
from torch import Tensor
from torch.autograd import Function
from torch.autograd.function import once_differentiable

_KERNELS = None


def _kernels():
    """The compiled kernels module, or ``False`` (warned once) when numba is not installed."""
    global _KERNELS
    if _KERNELS is None:
        try:
            from . import _roi_align_kernels
            _KERNELS = _roi_align_kernels
        except ImportError as e:
            warnings.warn(f'mmkd.ops.RoIAlign: numba is not importable ({e}), so RoIAlign on the CPU runs mmcv\'s '
                          'kernel (the same results, ~8x slower forward + backward); `pip install numba` '
                          '(requirements/runtime.txt) for the fast one')
            _KERNELS = False
    return _KERNELS


def _check_rois(feats: Tensor, rois: Tensor, aligned: bool) -> None:
    if rois.dim() != 2 or rois.size(1) != 5:
        raise ValueError(f'RoIAlign: rois must be (R, 5) rows of (batch index, x1, y1, x2, y2), got '
                         f'{tuple(rois.shape)}')
    if not rois.numel():
        return
    if not bool(torch.isfinite(rois).all()):  # the kernels' loop bounds come from the coordinates
        raise ValueError('RoIAlign: an RoI has a NaN or infinite coordinate (a diverged training gives NaN '
                         'proposals: check the losses before this step)')
    if not (0 <= float(rois[:, 0].min()) and float(rois[:, 0].max()) < feats.size(0)):
        raise ValueError(f'RoIAlign: an RoI\'s batch index is outside [0, {feats.size(0)}) (the feature batch); '
                         f'got indices in [{float(rois[:, 0].min())}, {float(rois[:, 0].max())}]')
    if aligned and bool(((rois[:, 3] < rois[:, 1]) | (rois[:, 4] < rois[:, 2])).any()):  # mmcv asserts the same
        raise ValueError('RoIAlign(aligned=True): an RoI has x2 < x1 or y2 < y1; boxes must be (x1, y1, x2, y2)')


def _scale(spatial_scale: float, dtype: type):
    """``spatial_scale`` as mmcv's kernel has it: a C ``float`` argument (rounded to float32), then the features'
    dtype."""
    return dtype(np.float32(spatial_scale))


class RoIAlignCPUFunction(Function):
    """Average RoIAlign on CPU tensors by the compiled kernels (see the module docstring; needs numba)."""

    @staticmethod
    def forward(ctx, feats: Tensor, rois: Tensor, output_size: Tuple[int, int], spatial_scale: float,
                sampling_ratio: int, aligned: bool) -> Tensor:
        _check_rois(feats, rois, aligned)
        channels_last = feats.detach().permute(0, 2, 3, 1).contiguous()
        rois = rois.detach().to(feats.dtype).contiguous()
        out = feats.new_zeros(rois.size(0), *output_size, feats.size(1))
        kernels = _kernels()
        if not kernels:
            raise ImportError('roi_align_cpu needs numba: `pip install numba` (or use mmkd.ops.RoIAlign, which falls '
                              'back to mmcv\'s kernel without it)')
        dtype = channels_last.numpy().dtype.type
        kernels.roi_align_forward_kernel(channels_last.numpy(), rois.numpy(), out.numpy(), _scale(spatial_scale, dtype),
                                         sampling_ratio, aligned, dtype)
        ctx.save_for_backward(rois)
        ctx.args = feats.shape, spatial_scale, sampling_ratio, aligned
        return out.permute(0, 3, 1, 2).contiguous()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output: Tensor) -> tuple:
        rois, = ctx.saved_tensors
        (n, c, h, w), spatial_scale, sampling_ratio, aligned = ctx.args
        grad_in = grad_output.new_zeros(n, h, w, c)
        grad_out = grad_output.permute(0, 2, 3, 1).contiguous()
        dtype = grad_out.numpy().dtype.type
        _kernels().roi_align_backward_kernel(grad_out.numpy(), rois.numpy(), grad_in.numpy(),
                                             _scale(spatial_scale, dtype), sampling_ratio, aligned, dtype)
        return grad_in.permute(0, 3, 1, 2), None, None, None, None, None


def roi_align_cpu(feats: Tensor, rois: Tensor, output_size: Union[int, Tuple[int, int]], spatial_scale: float = 1.0,
                  sampling_ratio: int = 0, aligned: bool = True) -> Tensor:
    """Average RoIAlign of CPU float32/float64 ``feats (B, C, H, W)`` over ``rois (R, 5)`` -> ``(R, C, PH, PW)``."""
    size = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
    return RoIAlignCPUFunction.apply(feats, rois, size, float(spatial_scale), int(sampling_ratio), bool(aligned))


class RoIAlign(MMCVRoIAlign):
    """mmcv's ``RoIAlign`` (same arguments and results) with the fast CPU path of this module for average pooling
    of float32/float64 CPU tensors; a detector's config takes it as ``roi_layer=dict(type='mmkd.RoIAlign')`` of
    :class:`mmkd.models.roi_heads.SingleRoIExtractor`.
    Without numba (a machine that only trains on GPUs need not have it) the CPU path is mmcv's, with a warning.
    """

    def forward(self, input: Tensor, rois: Tensor) -> Tensor:
        if (input.device.type == 'cpu' and input.dtype in (torch.float32, torch.float64) and self.pool_mode == 'avg'
                and not self.use_torchvision and _kernels()):
            return roi_align_cpu(input, rois, self.output_size, self.spatial_scale, self.sampling_ratio,
                                 self.aligned)
        return super().forward(input, rois)
