"""RoIAlign with a fast CPU path: mmcv's ``RoIAlign`` (average pooling), computed on the CPU by two compiled
kernels over channels-last features instead of mmcv's CPU kernels.

Why: on a CPU, mmcv 2.1.0's RoIAlign is a quarter of a Faster R-CNN training step at the study's sizes (its
backward recomputes every sample's bilinear weights once per channel). The same arithmetic over channels-last
features, one RoI bin at a time with the channel loop innermost, is about 8x faster forward + backward
(``tools/analysis/benchmark_roi_align.py``). Everything else (CUDA tensors, ``pool_mode='max'``, dtypes other than
float32/float64, ``use_torchvision``) goes to mmcv unchanged.

The math is mmcv's (``mmcv/ops/csrc/pytorch/cpu/roi_align.cpp``, pool_mode avg), for an RoI ``(b, x1, y1, x2, y2)``
in image coordinates, ``s = spatial_scale``, ``o = 0.5`` if ``aligned`` else 0 and a ``PH x PW`` output::

    x0 = x1 * s - o,  w = x2 * s - o - x0   (w = max(w, 1) if not aligned; the same for y0, h)
    grid_h = sampling_ratio if > 0 else ceil(h / PH)   (grid_w likewise)
    out[c, ph, pw] = 1 / max(grid_h * grid_w, 1) * sum over iy < grid_h, ix < grid_w of
                     bilinear(feats[b, c], y0 + (ph + (iy + .5) / grid_h) * h / PH,
                                           x0 + (pw + (ix + .5) / grid_w) * w / PW)

where ``bilinear`` is 0 for a point with y < -1, y > H, x < -1 or x > W, clamps the point to >= 0 and takes the
border row/column when it is past the last one. Shapes: feats ``(B, C, H, W)``, rois ``(R, 5)`` -> ``(R, C, PH, PW)``;
no gradient flows to the RoIs (as in mmcv). The kernels add in another order than mmcv's (about 1e-6 apart).
"""
import math
from typing import Tuple, Union

import numba
import torch
from mmcv.ops import RoIAlign as MMCVRoIAlign
from torch import Tensor
from torch.autograd import Function
from torch.autograd.function import once_differentiable

# compiled on first use, and cached next to this file (numba's cache is per module-level function)
_njit = numba.njit(cache=True, nogil=True)


@_njit
def _sample(start, bin_size, grid, p, i, length):
    # one axis of a sample point: (low index, high index, fraction); low < 0 when the point is outside
    v = start + p * bin_size + (i + 0.5) * bin_size / grid
    if v < -1.0 or v > length:
        return -1, 0, 0.0
    if v <= 0:
        v = 0.0
    lo = int(v)
    if lo >= length - 1:
        return length - 1, length - 1, 0.0
    return lo, lo + 1, v - lo


@_njit
def _geometry(roi, scale, ph_n, pw_n, sampling_ratio, aligned):
    off = 0.5 if aligned else 0.0
    x0 = roi[1] * scale - off
    y0 = roi[2] * scale - off
    w = roi[3] * scale - off - x0
    h = roi[4] * scale - off - y0
    if not aligned:
        w = max(w, 1.0)
        h = max(h, 1.0)
    gh = sampling_ratio if sampling_ratio > 0 else int(math.ceil(h / ph_n))
    gw = sampling_ratio if sampling_ratio > 0 else int(math.ceil(w / pw_n))
    return x0, y0, h / ph_n, w / pw_n, gh, gw


@_njit
def roi_align_forward_kernel(feats, rois, out, scale, sampling_ratio, aligned):
    # feats (B, H, W, C), rois (R, 5), out (R, PH, PW, C) zero-filled
    height, width, channels = feats.shape[1], feats.shape[2], feats.shape[3]
    for r in range(rois.shape[0]):
        b = int(rois[r, 0])
        x0, y0, bh, bw, gh, gw = _geometry(rois[r], scale, out.shape[1], out.shape[2], sampling_ratio, aligned)
        inv = 1.0 / max(gh * gw, 1)
        for ph in range(out.shape[1]):
            for pw in range(out.shape[2]):
                acc = out[r, ph, pw]
                for iy in range(gh):
                    yl, yh, ly = _sample(y0, bh, gh, ph, iy, height)
                    if yl < 0:
                        continue
                    for ix in range(gw):
                        xl, xh, lx = _sample(x0, bw, gw, pw, ix, width)
                        if xl < 0:
                            continue
                        w1, w2 = (1 - ly) * (1 - lx) * inv, (1 - ly) * lx * inv
                        w3, w4 = ly * (1 - lx) * inv, ly * lx * inv
                        f1, f2, f3, f4 = feats[b, yl, xl], feats[b, yl, xh], feats[b, yh, xl], feats[b, yh, xh]
                        for c in range(channels):
                            acc[c] += w1 * f1[c] + w2 * f2[c] + w3 * f3[c] + w4 * f4[c]


@_njit
def roi_align_backward_kernel(grad_out, rois, grad_in, scale, sampling_ratio, aligned):
    # grad_out (R, PH, PW, C), grad_in (B, H, W, C) zero-filled; the transpose of forward
    height, width, channels = grad_in.shape[1], grad_in.shape[2], grad_in.shape[3]
    for r in range(rois.shape[0]):
        b = int(rois[r, 0])
        x0, y0, bh, bw, gh, gw = _geometry(rois[r], scale, grad_out.shape[1], grad_out.shape[2],
                                           sampling_ratio, aligned)
        inv = 1.0 / max(gh * gw, 1)
        for ph in range(grad_out.shape[1]):
            for pw in range(grad_out.shape[2]):
                g = grad_out[r, ph, pw]
                for iy in range(gh):
                    yl, yh, ly = _sample(y0, bh, gh, ph, iy, height)
                    if yl < 0:
                        continue
                    for ix in range(gw):
                        xl, xh, lx = _sample(x0, bw, gw, pw, ix, width)
                        if xl < 0:
                            continue
                        w1, w2 = (1 - ly) * (1 - lx) * inv, (1 - ly) * lx * inv
                        w3, w4 = ly * (1 - lx) * inv, ly * lx * inv
                        a1, a2 = grad_in[b, yl, xl], grad_in[b, yl, xh]
                        a3, a4 = grad_in[b, yh, xl], grad_in[b, yh, xh]
                        for c in range(channels):
                            a1[c] += w1 * g[c]
                            a2[c] += w2 * g[c]
                            a3[c] += w3 * g[c]
                            a4[c] += w4 * g[c]


def _check_rois(feats: Tensor, rois: Tensor, aligned: bool) -> None:
    if rois.dim() != 2 or rois.size(1) != 5:
        raise ValueError(f'RoIAlign: rois must be (R, 5) rows of (batch index, x1, y1, x2, y2), got '
                         f'{tuple(rois.shape)}')
    if not rois.numel():
        return
    if not (0 <= float(rois[:, 0].min()) and float(rois[:, 0].max()) < feats.size(0)):
        raise ValueError(f'RoIAlign: an RoI\'s batch index is outside [0, {feats.size(0)}) (the feature batch); '
                         f'got indices in [{float(rois[:, 0].min())}, {float(rois[:, 0].max())}]')
    if aligned and bool(((rois[:, 3] < rois[:, 1]) | (rois[:, 4] < rois[:, 2])).any()):  # mmcv asserts the same
        raise ValueError('RoIAlign(aligned=True): an RoI has x2 < x1 or y2 < y1; boxes must be (x1, y1, x2, y2)')


class RoIAlignCPUFunction(Function):
    """Average RoIAlign on CPU tensors by the compiled kernels (see the module docstring)."""

    @staticmethod
    def forward(ctx, feats: Tensor, rois: Tensor, output_size: Tuple[int, int], spatial_scale: float,
                sampling_ratio: int, aligned: bool) -> Tensor:
        _check_rois(feats, rois, aligned)
        channels_last = feats.detach().permute(0, 2, 3, 1).contiguous()
        rois = rois.detach().to(feats.dtype).contiguous()
        out = feats.new_zeros(rois.size(0), *output_size, feats.size(1))
        roi_align_forward_kernel(channels_last.numpy(), rois.numpy(), out.numpy(), spatial_scale, sampling_ratio,
                                 aligned)
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
        roi_align_backward_kernel(grad_out.numpy(), rois.numpy(), grad_in.numpy(), spatial_scale, sampling_ratio,
                                  aligned)
        return grad_in.permute(0, 3, 1, 2), None, None, None, None, None


def roi_align_cpu(feats: Tensor, rois: Tensor, output_size: Union[int, Tuple[int, int]], spatial_scale: float = 1.0,
                  sampling_ratio: int = 0, aligned: bool = True) -> Tensor:
    """Average RoIAlign of CPU float32/float64 ``feats (B, C, H, W)`` over ``rois (R, 5)`` -> ``(R, C, PH, PW)``."""
    size = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
    return RoIAlignCPUFunction.apply(feats, rois, size, float(spatial_scale), int(sampling_ratio), bool(aligned))


class RoIAlign(MMCVRoIAlign):
    """mmcv's ``RoIAlign`` (same arguments and results) with the fast CPU path of this module for average pooling
    of float32/float64 CPU tensors; used by ``mmkd.SingleRoIExtractor`` as ``roi_layer=dict(type='mmkd.RoIAlign')``.
    """

    def forward(self, input: Tensor, rois: Tensor) -> Tensor:
        if (input.device.type == 'cpu' and input.dtype in (torch.float32, torch.float64) and self.pool_mode == 'avg'
                and not self.use_torchvision):
            return roi_align_cpu(input, rois, self.output_size, self.spatial_scale, self.sampling_ratio,
                                 self.aligned)
        return super().forward(input, rois)
