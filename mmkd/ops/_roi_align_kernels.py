"""The compiled kernels of :mod:`mmkd.ops.roi_align` (numba; imported only when a CPU RoIAlign runs): average
RoIAlign forward and backward over channels-last float arrays, mmcv's sampling (see that module's docstring).

Each kernel loops over RoIs, output bins and sample points, with the channel loop innermost (contiguous in a
channels-last array); the bilinear weights of a sample are computed once for all channels. The backward is the
forward's transpose: each output gradient row is added, weighted, into the 4 input rows its sample read. The two
repeat the loop over samples on purpose: one kernel for both (a flag, or the channel loop passed as a function)
gave the same numbers 2x slower at the demo's sizes, and numba cannot cache the function-argument variant.
"""
import math

import numba
import numpy

# compiled on first use, and cached next to this file (numba caches module-level functions)
_njit = numba.njit(cache=True, nogil=True)


@_njit
def _sample(start, bin_size, grid, p, i, length, T):
    # one axis of a sample point, in mmcv's precision T: (low index, high index, fraction); low < 0 when the point
    # is outside
    v = start + T(p) * bin_size + T(i + 0.5) * bin_size / T(grid)
    if v < -1.0 or v > length:
        return -1, 0, T(0)
    if v <= 0:
        v = T(0)
    lo = int(v)
    if lo >= length - 1:
        return length - 1, length - 1, T(0)
    return lo, lo + 1, v - T(lo)


@_njit
def _geometry(roi, scale, ph_n, pw_n, sampling_ratio, aligned, T):
    # mmcv's steps, each rounded to T (the features' float32 or float64); the grid from a float32 ceilf, also for
    # float64
    off = T(0.5) if aligned else T(0)
    x0 = roi[1] * scale - off
    y0 = roi[2] * scale - off
    w = (roi[3] * scale - off) - x0
    h = (roi[4] * scale - off) - y0
    if not aligned:
        w = max(w, T(1))
        h = max(h, T(1))
    gh = sampling_ratio if sampling_ratio > 0 else int(math.ceil(numpy.float32(h / T(ph_n))))
    gw = sampling_ratio if sampling_ratio > 0 else int(math.ceil(numpy.float32(w / T(pw_n))))
    return x0, y0, h / T(ph_n), w / T(pw_n), gh, gw


@_njit
def _weights(ly, lx, T):
    # mmcv's bilinear weights of a sample (hy = 1. - ly in double, rounded to T)
    hy, hx = T(1.0 - ly), T(1.0 - lx)
    return hy * hx, hy * lx, ly * hx, ly * lx


@_njit
def roi_align_forward_kernel(feats, rois, out, scale, sampling_ratio, aligned, T):
    # feats (B, H, W, C), rois (R, 5), out (R, PH, PW, C) zero-filled, all of dtype T; scale a T
    height, width, channels = feats.shape[1], feats.shape[2], feats.shape[3]
    for r in range(rois.shape[0]):
        b = int(rois[r, 0])
        x0, y0, bh, bw, gh, gw = _geometry(rois[r], scale, out.shape[1], out.shape[2], sampling_ratio, aligned, T)
        count = T(max(gh * gw, 1))
        for ph in range(out.shape[1]):
            for pw in range(out.shape[2]):
                acc = out[r, ph, pw]
                for iy in range(gh):
                    yl, yh, ly = _sample(y0, bh, gh, ph, iy, height, T)
                    if yl < 0:
                        continue
                    for ix in range(gw):
                        xl, xh, lx = _sample(x0, bw, gw, pw, ix, width, T)
                        if xl < 0:
                            continue
                        w1, w2, w3, w4 = _weights(ly, lx, T)
                        f1, f2, f3, f4 = feats[b, yl, xl], feats[b, yl, xh], feats[b, yh, xl], feats[b, yh, xh]
                        for c in range(channels):  # mmcv's sum in T, divided by the count at the end
                            acc[c] += w1 * f1[c] + w2 * f2[c] + w3 * f3[c] + w4 * f4[c]
                for c in range(channels):
                    acc[c] /= count


@_njit
def roi_align_backward_kernel(grad_out, rois, grad_in, scale, sampling_ratio, aligned, T):
    # grad_out (R, PH, PW, C), grad_in (B, H, W, C) zero-filled; the transpose of forward
    height, width, channels = grad_in.shape[1], grad_in.shape[2], grad_in.shape[3]
    for r in range(rois.shape[0]):
        b = int(rois[r, 0])
        x0, y0, bh, bw, gh, gw = _geometry(rois[r], scale, grad_out.shape[1], grad_out.shape[2],
                                           sampling_ratio, aligned, T)
        inv = T(1) / T(max(gh * gw, 1))
        for ph in range(grad_out.shape[1]):
            for pw in range(grad_out.shape[2]):
                g = grad_out[r, ph, pw]
                for iy in range(gh):
                    yl, yh, ly = _sample(y0, bh, gh, ph, iy, height, T)
                    if yl < 0:
                        continue
                    for ix in range(gw):
                        xl, xh, lx = _sample(x0, bw, gw, pw, ix, width, T)
                        if xl < 0:
                            continue
                        # mmcv's weights divided by the count once per sample (mmcv: per channel; within 1 ulp)
                        w1, w2, w3, w4 = _weights(ly, lx, T)
                        w1, w2, w3, w4 = w1 * inv, w2 * inv, w3 * inv, w4 * inv
                        a1, a2 = grad_in[b, yl, xl], grad_in[b, yl, xh]
                        a3, a4 = grad_in[b, yh, xl], grad_in[b, yh, xh]
                        for c in range(channels):
                            a1[c] += w1 * g[c]
                            a2[c] += w2 * g[c]
                            a3[c] += w3 * g[c]
                            a4[c] += w4 * g[c]
