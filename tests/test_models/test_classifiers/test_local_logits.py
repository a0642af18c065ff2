"""SDD/iCD local logits pooled as SDD's released SPP: the map to 4x4 (overlapping windows when 4 does not divide
the side), every coarser grid from the 4x4; checked against hand-computed windows and torch's AdaptiveAvgPool2d."""
import math

import pytest
import torch
from torch import nn

import mmkd  # noqa: F401
from mmkd.models.classifiers import LocalLogits, multi_scale_local_logits


def windows(size, cells):
    """adaptive_avg_pool's window of every cell along a side: [floor(i*size/n), ceil((i+1)*size/n))."""
    return [(i * size // cells, math.ceil((i + 1) * size / cells)) for i in range(cells)]


def pool_by_hand(x, cells):
    """[C, H, W] -> [C, cells, cells] with the windows above, one cell at a time."""
    out = torch.empty(x.shape[0], cells, cells, dtype=x.dtype)
    for i, (r0, r1) in enumerate(windows(x.shape[1], cells)):
        for j, (c0, c1) in enumerate(windows(x.shape[2], cells)):
            out[:, i, j] = x[:, r0:r1, c0:c1].mean((1, 2))
    return out


def test_window_formula_by_hand():
    assert windows(14, 4) == [(0, 4), (3, 7), (7, 11), (10, 14)]  # overlapping
    assert windows(7, 4) == [(0, 2), (1, 4), (3, 6), (5, 7)]
    assert windows(8, 4) == [(0, 2), (2, 4), (4, 6), (6, 8)]
    assert windows(4, 2) == [(0, 2), (2, 4)]


# a map that is 1 on row 3 and 0 elsewhere: the rows of the 4x4 grid, then of the 2x2 (from the 4x4), the 1x1
# (from the 4x4) and the global mean; every column of a grid is the same
ROW3 = {
    14: ([1 / 4, 1 / 4, 0, 0], [1 / 4, 0], 1 / 8, 1 / 14),  # row 3 lies in windows [0, 4) and [3, 7)
    7: ([0, 1 / 3, 1 / 3, 0], [1 / 6, 1 / 6], 1 / 6, 1 / 7),  # in [1, 4) and [3, 6)
    8: ([0, 1 / 2, 0, 0], [1 / 4, 0], 1 / 8, 1 / 8),
    4: ([0, 0, 0, 1], [0, 1 / 2], 1 / 4, 1 / 4),
}


@pytest.mark.parametrize('size', sorted(ROW3))
def test_hand_values_row_delta(size):
    x = torch.zeros(1, 1, size, size, dtype=torch.float64)
    x[:, :, 3] = 1
    w, b = torch.tensor([[2.], [-1.]], dtype=torch.float64), torch.tensor([0.5, 0.], dtype=torch.float64)
    z = multi_scale_local_logits(x, w, b, (1, 2, 4))  # [1, 2, 21]
    grid4, grid2, one, global_mean = ROW3[size]
    pooled = torch.tensor([one] + [v for v in grid2 for _ in range(2)] + [v for v in grid4 for _ in range(4)],
                          dtype=torch.float64)
    torch.testing.assert_close(z[0], w @ pooled[None] + b[:, None])
    # the 1x1 region is the mean of the 4x4 cells: the map's mean only when 4 divides the side
    assert (abs(one - global_mean) < 1e-12) == (size % 4 == 0)
    # pooling each grid from the map instead (base_grid=None) gives the global mean and the direct 2x2 windows
    direct = multi_scale_local_logits(x, w, None, (1, 2), base_grid=None)[0, 0]
    half = [1 / (r1 - r0) if r0 <= 3 < r1 else 0. for r0, r1 in windows(size, 2)]
    torch.testing.assert_close(direct, 2 * torch.tensor([global_mean, half[0], half[0], half[1], half[1]],
                                                        dtype=torch.float64))


@pytest.mark.parametrize('size', [14, 7, 8, 4, 5, 2, 1])
@pytest.mark.parametrize('scales', [(1, 2, 4), (1, 2), (1, ), (4, ), (2, 4)])
def test_matches_sdd_spp_and_hand_windows(size, scales):
    """SDD's SPP: AdaptiveAvgPool2d((4, 4)) on the map, then (2, 2) and (1, 1) on the 4x4, concatenated in the
    order of the scales; the linear classifier on every region."""
    g = torch.Generator().manual_seed(size)
    x = torch.randn(2, 3, size, size + (size == 5), generator=g, dtype=torch.float64)
    w, b = torch.randn(4, 3, generator=g, dtype=torch.float64), torch.randn(4, generator=g, dtype=torch.float64)
    base = nn.AdaptiveAvgPool2d((4, 4))(x)
    grids = {4: base, 2: nn.AdaptiveAvgPool2d((2, 2))(base), 1: nn.AdaptiveAvgPool2d((1, 1))(base)}
    feats = torch.cat([grids[s].flatten(2) for s in scales], dim=2)  # [B, C, P]
    expected = torch.einsum('bcp,kc->bkp', feats, w) + b[:, None]
    module = LocalLogits(scales)
    z = module(x, w, b)
    assert z.shape == (2, 4, module.num_regions)
    torch.testing.assert_close(z, expected)
    # the 4x4 grid against the windows computed by hand
    by_hand = torch.stack([pool_by_hand(xi, 4) for xi in x])
    torch.testing.assert_close(base, by_hand)


def test_sdd_pooling_differs_from_direct_pooling_on_14x14():
    """On a 14x14 map SDD's 1x1 and 2x2 regions are not the direct poolings (overlapping 4x4 windows)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, 14, 14, generator=g).abs()
    w = torch.eye(5)
    sdd, direct = multi_scale_local_logits(x, w, None, (1, 2)), multi_scale_local_logits(x, w, None, (1, 2), None)
    torch.testing.assert_close(direct[:, :, 0], x.mean((2, 3)))
    assert (sdd - direct).abs().max() > 1e-3


def test_errors():
    with pytest.raises(ValueError, match='positive ints'):
        LocalLogits((0, 2))
    with pytest.raises(ValueError, match=r'scales \[3\] do not divide base_grid=4.*base_grid=None'):
        LocalLogits((1, 3))
    with pytest.raises(ValueError, match=r'scales \[8\] do not divide'):
        multi_scale_local_logits(torch.randn(1, 2, 8, 8), torch.randn(3, 2), None, (1, 8))
    assert LocalLogits((1, 3), base_grid=None).num_regions == 10
    assert LocalLogits((1, 2, 4, 8), base_grid=8).num_regions == 85
    with pytest.raises(ValueError, match='base_grid must be a positive int'):
        LocalLogits((1, ), base_grid=0)
