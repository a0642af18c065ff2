"""mmkd.ops.RoIAlign: mmcv's RoIAlign results (forward and gradient) from the CPU kernels, on the cases that have
their own branch in mmcv's kernel; mmcv itself where the kernels do not apply; clear errors."""
import itertools
import sys

import pytest
import torch

import mmkd  # noqa: F401,I001
from mmcv.ops import RoIAlign as MMCVRoIAlign
from mmcv.ops import roi_align as mmcv_roi_align

from mmkd.ops import RoIAlign, roi_align_cpu


def rois_of_every_kind(n_img=3, size=64, n=40, seed=0, inverted=False):
    """Random boxes plus the special cases: empty, outside the map, at and past its borders, sub-pixel, and an
    inverted box (x2 < x1: only without ``aligned``, which clamps its size to 1; mmcv refuses it with ``aligned``)."""
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * size - 4
    wh = torch.rand(n, 2, generator=g) * size
    boxes = torch.cat([xy, xy + wh], 1)
    special = torch.tensor([
        [10., 10., 10., 10.],            # empty (aligned: no samples, output 0)
        [30., 30., 20., 20.] if inverted else [30., 30., 30., 36.],  # inverted (or a zero-width box)
        [size + 8., 5., size + 20., 9.],  # right of the map
        [-30., -30., -9., -9.],          # above-left of the map
        [0., 0., size, size],            # the whole image
        [size - 3., size - 3., size + 5., size + 5.],  # past the bottom-right border
        [5., 5., 5.4, 5.3],              # sub-pixel
        [-2., 20., 3., 60.]])            # across the left border
    boxes = torch.cat([boxes, special])
    index = torch.randint(0, n_img, (len(boxes), 1), generator=g).float()
    return torch.cat([index, boxes], 1)


@pytest.mark.parametrize('aligned,sampling_ratio,scale,dtype', [
    (True, 0, 1 / 4, torch.float32), (True, 2, 1 / 8, torch.float32), (False, 0, 1 / 4, torch.float32),
    (False, 1, 1 / 2, torch.float64), (True, 0, 1 / 4, torch.float64)])
def test_matches_mmcv_forward_and_gradient(aligned, sampling_ratio, scale, dtype):
    feats = torch.randn(3, 5, 16, 12, dtype=dtype)  # not square: H and W must not be swapped
    rois = rois_of_every_kind(inverted=not aligned).to(dtype)
    ours = RoIAlign((7, 6), scale, sampling_ratio, aligned=aligned)
    ref = MMCVRoIAlign((7, 6), scale, sampling_ratio, aligned=aligned)
    x1 = feats.clone().requires_grad_()
    x2 = feats.clone().requires_grad_()
    out, expected = ours(x1, rois), ref(x2, rois)
    assert out.shape == expected.shape == (len(rois), 5, 7, 6)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(out, expected, atol=tol, rtol=tol)
    assert out[len(rois) - 5].abs().max() == 0  # outside the map
    if aligned and not sampling_ratio:
        assert out[len(rois) - 8].abs().max() == 0  # empty: no sample points
    grad = torch.randn_like(out)
    out.backward(grad)
    expected.backward(grad)
    torch.testing.assert_close(x1.grad, x2.grad, atol=tol * 10, rtol=tol)
    assert x1.grad.abs().sum() > 0


def boundary_rois(scale, size, aligned, n_img=2, height=20, width=24, n=96, seed=0):
    """Boxes where mmcv's float32 rounding decides, on and around a ``height x width`` map at ``scale``, corners
    with 1 or 2 decimals (the nearest float of the decimal, as a box in a file or from a decoder is):

    * sides whose scaled length is an exact multiple (1-3x) of the output size, or 0.01 / 0.1 image px more or
      less (the adaptive grid);
    * small boxes centred, in exact arithmetic, on the map's border lines y = -1, y = height, x = -1, x = width,
      where a sample point is on the map or off it by its rounding (the middle sample of an odd output size);
    * the boxes the adaptive grid was seen to differ on (x 3.7 -> 31.7 at 1/4, 1.1 -> 15.1 at 1/2).

    Float64 rows (cast them to the features' dtype)."""
    ph, pw = size
    g = torch.Generator().manual_seed(seed)
    d = torch.where(torch.rand(n, 1, generator=g) < .5, 10., 100.).double()  # decimals of the box
    # integer numerators (in 1/d px) of the corner and the sides, divided once: each corner the decimal's nearest
    corner = torch.floor(torch.rand(n, 2, generator=g).double() * torch.tensor([width, height]) / scale * d) - 2 * d
    multiple = torch.randint(1, 4, (n, 2), generator=g).double() * torch.tensor([pw, ph]) / scale
    nudge = torch.tensor([0., 0., 0., 1., -1., 10., -10.]).double()[torch.randint(0, 7, (n, 2), generator=g)]
    far = corner + torch.round(multiple * d) + nudge * d / 100
    boxes = torch.cat([corner, far], 1) / d
    # centred on a border line: centre (c + o) / scale in image px, half a side of at most one bin (one sample)
    m = n // 2
    axis = torch.randint(0, 2, (m, ), generator=g)  # 0: x, 1: y
    line = torch.where(torch.rand(m, generator=g) < .5, -1., torch.where(axis == 0, float(width), float(height)))
    centre = torch.round((line.double() + (0.5 if aligned else 0.)) / scale * 100)  # in 1/100 px: exact
    half = torch.randint(1, 50, (m, ), generator=g).double() * torch.where(axis == 0, pw, ph) / scale
    other = torch.floor(torch.rand(m, generator=g).double() * torch.where(axis == 0, height, width) / scale * 100)
    other_side = torch.randint(100, 800, (m, ), generator=g).double() / scale
    lo, hi = centre - torch.round(half), centre + torch.round(half)
    on_x = torch.stack([lo, other, hi, other + other_side], 1)
    on_y = torch.stack([other, lo, other + other_side, hi], 1)
    boxes = torch.cat([boxes, torch.where((axis == 0)[:, None], on_x, on_y) / 100])
    seen = torch.tensor([[3.7, 3.7, 31.7, 31.7], [1.1, 1.1, 15.1, 15.1], [1.1, 3.7, 15.1, 31.7]]).double()
    boxes = torch.cat([boxes, seen])
    index = torch.randint(0, n_img, (len(boxes), 1), generator=g).double()
    return torch.cat([index, boxes], 1)


def mmcv_grid(rois, size, scale, aligned, dtype):
    """mmcv's adaptive grid (sampling_ratio 0) of each box, (R, 2) (across, down): ``ceilf(h / PH)`` of the box's
    height in ``dtype`` arithmetic with the quotient rounded to float32; and what float64 arithmetic gives."""
    r, s, o = rois.to(dtype), torch.tensor(scale, dtype=torch.float32).to(dtype), 0.5 if aligned else 0.
    sides = (r[:, 3:5] * s - o) - (r[:, 1:3] * s - o)
    exact = (r.double()[:, 3:5] * scale - o) - (r.double()[:, 1:3] * scale - o)
    if not aligned:
        sides, exact = sides.clamp(min=1), exact.clamp(min=1)
    out = torch.tensor(size[::-1], dtype=dtype)
    return torch.ceil((sides / out).float()).long(), torch.ceil(exact / out.double()).long()


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_matches_mmcv_on_boxes_at_its_rounding_boundaries(dtype):
    """Forward and gradient against mmcv's own ``roi_align`` on :func:`boundary_rois`, for every combination of
    aligned or not, scales 1/4 1/8 1/2, four output sizes and sampling ratios 0 and 2: mmcv counts the adaptive
    grid in float32 and computes the sample points in the features' dtype (float32 here: a sample point's
    coordinate decides whether it is on the map), and so must the kernels; float64 arithmetic gave up to one more
    sample per bin and differences of order 1 on unit features."""
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    g = torch.Generator().manual_seed(1)
    worst, grid_differs = {}, 0
    for aligned, scale, size, ratio in itertools.product((True, False), (1 / 4, 1 / 8, 1 / 2),
                                                         ((7, 7), (7, 6), (3, 5), (14, 14)), (0, 2)):
        rois = boundary_rois(scale, size, aligned)
        grid, exact_grid = mmcv_grid(rois, size, scale, aligned, dtype)
        grid_differs += int((grid != exact_grid).any(1).sum()) if not ratio else 0
        rois = rois.to(dtype)
        feats = torch.randn(2, 3, 20, 24, dtype=dtype, generator=g)
        x1, x2 = feats.clone().requires_grad_(), feats.clone().requires_grad_()
        out = RoIAlign(size, scale, ratio, aligned=aligned)(x1, rois)
        expected = mmcv_roi_align(x2, rois, size, scale, ratio, 'avg', aligned)
        grad = torch.randn(out.shape, dtype=dtype, generator=g)
        out.backward(grad)
        expected.backward(grad)
        case = f'aligned={aligned} scale=1/{round(1 / scale)} size={size} sampling_ratio={ratio}'
        out, expected = out.detach(), expected.detach()
        worst[case] = (float(((out - expected).abs() - tol * expected.abs()).max()),
                       float(((x1.grad - x2.grad).abs() - tol * x2.grad.abs()).max()))
        assert out.abs().sum() > 0 and x1.grad.abs().sum() > 0
    bad = {case: errors for case, errors in worst.items() if max(errors) > tol}
    assert not bad, f'forward / gradient error beyond {tol} (+ {tol} relative): {bad}'
    # the boxes do hit the boundary: a float64 count of the grid differs from mmcv's
    assert grid_differs > 20


def test_gradient_is_the_transpose_of_the_forward():
    feats = torch.randn(2, 3, 9, 11, dtype=torch.float64, requires_grad=True)
    rois = rois_of_every_kind(n_img=2, size=40, n=6).double()
    # away from the bilinear kinks the map is linear in feats, so the numerical gradient is exact
    assert torch.autograd.gradcheck(lambda f: roi_align_cpu(f, rois, 3, 1 / 4, 0, True), (feats, ))


def test_mmcv_computes_what_the_kernels_do_not(monkeypatch):
    import mmkd.ops.roi_align as module

    def not_here(*args, **kwargs):
        raise AssertionError('the CPU kernels ran on an input they do not handle')

    monkeypatch.setattr(module, 'roi_align_cpu', not_here)
    feats, rois = torch.randn(3, 4, 10, 10), rois_of_every_kind(size=40)

    def outcome(layer, x, r):  # the output, or the type of the error raised (mmcv's, as it would be without mmkd)
        try:
            return layer(x, r)
        except Exception as e:  # noqa: B902  (mmcv: RuntimeError for a dtype, ImportError without torchvision)
            return type(e)

    for kwargs, x, r in ((dict(pool_mode='max'), feats, rois), (dict(use_torchvision=True), feats, rois),
                         (dict(), feats.bfloat16(), rois.bfloat16()), (dict(), feats.half(), rois.half())):
        ours = outcome(RoIAlign(5, 1 / 4, 0, **kwargs), x, r)
        theirs = outcome(MMCVRoIAlign(5, 1 / 4, 0, **kwargs), x, r)
        if isinstance(theirs, torch.Tensor):
            torch.testing.assert_close(ours, theirs, atol=0, rtol=0)
        else:
            assert ours is theirs


def test_no_rois_and_bad_rois():
    feats = torch.randn(2, 4, 8, 8, requires_grad=True)
    out = RoIAlign(7, 1 / 4)(feats, torch.zeros(0, 5))
    assert out.shape == (0, 4, 7, 7)
    out.sum().backward()
    assert feats.grad.abs().sum() == 0
    with pytest.raises(ValueError, match=r'batch index is outside \[0, 2\)'):
        RoIAlign(7, 1 / 4)(feats, torch.tensor([[2., 0., 0., 8., 8.]]))
    with pytest.raises(ValueError, match=r'batch index is outside'):
        RoIAlign(7, 1 / 4)(feats, torch.tensor([[-1., 0., 0., 8., 8.]]))
    with pytest.raises(ValueError, match=r'rois must be \(R, 5\)'):
        RoIAlign(7, 1 / 4)(feats, torch.zeros(3, 4))
    with pytest.raises(ValueError, match=r'x2 < x1 or y2 < y1'):
        RoIAlign(7, 1 / 4)(feats, torch.tensor([[0., 0., 5., 8., 4.]]))
    for bad in (float('nan'), float('inf'), -float('inf')):
        with pytest.raises(ValueError, match=r'NaN or infinite coordinate'):
            RoIAlign(7, 1 / 4, aligned=False)(feats, torch.tensor([[0., 1., 1., bad, 4.]]))


def test_without_numba_mmcv_computes_it_and_says_so(monkeypatch):
    import mmkd.ops.roi_align as module
    feats, rois = torch.randn(3, 4, 10, 10), rois_of_every_kind(size=40)
    monkeypatch.setattr(module, '_KERNELS', None)
    monkeypatch.setitem(sys.modules, 'numba', None)  # `import numba` raises ImportError
    monkeypatch.delitem(sys.modules, 'mmkd.ops._roi_align_kernels', raising=False)
    monkeypatch.delattr(sys.modules['mmkd.ops'], '_roi_align_kernels', raising=False)  # a submodule imported before
    with pytest.warns(UserWarning, match=r'numba is not importable .* `pip install numba`'):
        out = RoIAlign(5, 1 / 4, 0)(feats, rois)
    torch.testing.assert_close(out, MMCVRoIAlign(5, 1 / 4, 0)(feats, rois), atol=0, rtol=0)
    with pytest.raises(ImportError, match='roi_align_cpu needs numba'):
        roi_align_cpu(feats, rois, 5, 1 / 4)
