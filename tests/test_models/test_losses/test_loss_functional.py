"""mmkd.models.losses.functional against straightforward loop implementations, gradcheck and properties."""
import itertools

import pytest
import torch
import torch.nn.functional as F

from mmkd.models.losses import ICDLoss
from mmkd.models.losses.functional import (icd_grouped_loss, icd_loss, nc1_align_loss, nc1_contrast_loss, nc2_loss,
                                           nc3_align_loss, nd_loss, prototype_cosine_logits, prototype_directions)

D64 = dict(dtype=torch.float64)
TOL = dict(atol=1e-6, rtol=1e-6)


# ---------------------------------------------------------------------------------------------- loop references
def valid_row(row):
    return bool(torch.isfinite(row).all()) and float(row.norm()) > 0


def ref_nd(s, t, y, c, w=None, eps=1e-6, norm_floor=0.0):
    """KD++'s ND per sample: 1 - <f_s, c_y/||c_y||> / (max(||f_s||, ||f_t||) + eps); norm_floor > 0 (ours) also
    bounds the teacher norm below by norm_floor * ||c_y||."""
    num = den = 0.
    for i in range(s.shape[0]):
        wi = 1. if w is None else float(w[i])
        if wi <= 0 or not valid_row(c[y[i]]):
            continue
        e = c[y[i]] / c[y[i]].norm()
        num += wi * (1 - (s[i] @ e) / (max(s[i].norm(), t[i].norm(), norm_floor * c[y[i]].norm()) + eps))
        den += wi
    return num / den if den else torch.zeros(())


def kl_rows(gs, gt, tau):
    return sum((F.softmax(gt[r] / tau, 0) * (F.log_softmax(gt[r] / tau, 0) - F.log_softmax(gs[r] / tau, 0))).sum()
               for r in range(gs.shape[0]))


# iCD scale weights by scale, written out by hand: the official ones (1 -> 1, 2 -> 2, 4 -> 3 before normalising,
# see official_cluster_loss below) and our extension 1 + log2(s) for scale 3
SCALE_RANK = {1: 1., 2: 2., 3: 1 + 1.584962500721156, 4: 3.}


def ref_icd(zs, zt, scales, tau):
    total, start = 0., 0
    for s in scales:
        n = s * s
        kl = 0.
        for b in range(zs.shape[0]):
            a = torch.stack([zs[b, :, r] / zs[b, :, r].norm() for r in range(start, start + n)])
            c = torch.stack([zt[b, :, r] / zt[b, :, r].norm() for r in range(start, start + n)])
            kl = kl + kl_rows(a @ a.T, c @ c.T, tau)
        total = total + SCALE_RANK[s] / sum(SCALE_RANK[g] for g in scales) * kl / zs.shape[0]
        start += n
    return total


# Transcription of the official iCD ``cluster_loss`` (github.com/maomaochongaa/iCD, mdistiller/distillers/
# CD_SDD_DKD.py), including its region-count table. ``extra_table`` adds entries for the region counts the official
# code rejects (our extension of its weights, written out by hand).
OFFICIAL_TABLE = {
    1: ([(0, 1)], [1.0]),
    5: ([(0, 1), (1, 5)], [1.0 / 3, 2.0 / 3]),
    17: ([(0, 1), (1, 17)], [1.0 / 4, 3.0 / 4]),
    21: ([(0, 1), (1, 5), (5, 21)], [1.0 / 6, 2.0 / 6, 3.0 / 6]),
}


def official_cluster_loss(patch_student, patch_teacher, gamma, temperature=1, extra_table=None):
    patch_student = F.normalize(patch_student, dim=1)
    patch_teacher = F.normalize(patch_teacher, dim=1)
    B, C, P = patch_student.shape

    def compute_kl_loss(sim_s, sim_t, temperature):
        return F.kl_div(
            F.log_softmax(sim_s / temperature, dim=-1), F.softmax(sim_t / temperature, dim=-1), reduction='batchmean')

    table = {**OFFICIAL_TABLE, **(extra_table or {})}
    if P not in table:
        raise NotImplementedError(f'P = {P} not supported')
    groups, weights = table[P]
    total_loss = 0.0
    for (start, end), weight in zip(groups, weights):
        ps = patch_student[:, :, start:end]
        pt = patch_teacher[:, :, start:end]
        sim_s = torch.bmm(ps.transpose(1, 2), ps)
        sim_t = torch.bmm(pt.transpose(1, 2), pt)
        loss = compute_kl_loss(sim_s, sim_t, temperature=2) * (temperature**2)
        total_loss += weight * loss
    return gamma * total_loss


def ref_grouped(zs, zt, groups, tau):
    per_group = []
    for g in groups.unique():
        rows = (groups == g).nonzero().flatten()
        if len(rows) < 2:
            continue
        a = torch.stack([zs[r] / zs[r].norm() for r in rows])
        c = torch.stack([zt[r] / zt[r].norm() for r in rows])
        per_group.append(kl_rows(a @ a.T, c @ c.T, tau) / len(rows))
    return sum(per_group) / len(per_group) if per_group else torch.zeros(())


def ref_directions(p, center=True):
    valid = [valid_row(p[k]) for k in range(p.shape[0])]
    mu = sum(p[k] for k in range(p.shape[0]) if valid[k]) / max(sum(valid), 1) if center else 0
    out, ok = [], []
    for k in range(p.shape[0]):
        v = p[k] - mu if valid[k] else torch.zeros_like(p[k])
        ok.append(valid[k] and float(v.norm()) > 0)
        out.append(v / v.norm() if ok[-1] else torch.zeros_like(v))
    return torch.stack(out), ok


def ref_nc1(s, y, p, tau, w=None, center=True):
    """With ``center``: features centred by the mean of the kept samples' weighted class means (the centring fix:
    centred features against centred prototypes); 0 when fewer than 2 classes are kept."""
    d, ok = ref_directions(p, center)
    ws = [1. if w is None else float(w[i]) for i in range(s.shape[0])]
    kept = [i for i in range(s.shape[0]) if ws[i] > 0 and ok[y[i]]]
    m = 0
    if center:
        classes = sorted({int(y[i]) for i in kept})
        if len(classes) < 2:
            return torch.zeros(()), torch.zeros(())
        means = [sum(ws[i] * s[i] for i in kept if y[i] == k) / sum(ws[i] for i in kept if y[i] == k)
                 for k in classes]
        m = sum(means) / len(means)
    con = ali = den = 0.
    for i in kept:
        wi, z = ws[i], s[i] - m
        cos = [z @ d[k] / z.norm() for k in range(p.shape[0]) if ok[k]]
        mine = z @ d[y[i]] / z.norm()
        con += wi * (torch.logsumexp(torch.stack(cos) / tau, 0) - mine / tau)
        ali += wi * (1 - mine)
        den += wi
    return (con / den, ali / den) if den else (torch.zeros(()), torch.zeros(()))


def ref_nc2(s, y, p, weight=None, ignore_index=None, center=True):
    w = weight
    ms, mt = [], []
    for k in range(p.shape[0]):
        ws = [(1. if w is None else float(w[i])) for i in range(s.shape[0])]
        rows = [i for i in range(s.shape[0]) if y[i] == k and ws[i] > 0]
        if not rows or k == ignore_index or not valid_row(p[k]):
            continue
        ms.append(sum(ws[i] * s[i] for i in rows) / sum(ws[i] for i in rows))
        mt.append(p[k])
    if len(ms) < (3 if center else 2):  # two centred means are always antipodal: nothing to compare
        return torch.zeros((), dtype=s.dtype)
    ms, mt = torch.stack(ms), torch.stack(mt)
    if center:
        ms, mt = ms - ms.mean(0), mt - mt.mean(0)
    ms = torch.stack([r / r.norm() for r in ms])
    mt = torch.stack([r / r.norm() for r in mt])
    return ((ms @ ms.T - mt @ mt.T)**2).sum() / len(ms)**2


def ref_nc3(w, p):
    d, ok = ref_directions(p)
    rows = [k for k in range(p.shape[0]) if ok[k]]
    a, b = w[rows], d[rows]
    return ((a / a.norm() - b / b.norm())**2).sum()


def inputs(n, d, k, seed, invalid=(1, )):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(n, d, generator=g, **D64)
    t = torch.randn(n, d, generator=g, **D64) * 1.5
    y = torch.randint(0, k, (n, ), generator=g)
    c = torch.randn(k, d, generator=g, **D64) + 0.5
    c[list(invalid)] = 0
    w = torch.rand(n, generator=g, **D64) - 0.2  # some non-positive weights
    return s, t, y, c, w


SHAPES = [(7, 5, 4, 0), (16, 3, 6, 1), (33, 8, 10, 2)]


# ---------------------------------------------------------------------------------------------- ND
@pytest.mark.parametrize('n,d,k,seed', SHAPES)
def test_nd_matches_loop(n, d, k, seed):
    s, t, y, c, w = inputs(n, d, k, seed)
    c[2, 0] = float('nan')  # non-finite mean: its samples are dropped
    torch.testing.assert_close(nd_loss(s, t, y, c), ref_nd(s, t, y, c), **TOL)
    torch.testing.assert_close(nd_loss(s, t, y, c, weight=w), ref_nd(s, t, y, c, w), **TOL)
    t[::2] *= 0.01  # the teacher norm floor binds on these
    for floor in (0, 0.1, 0.5):
        torch.testing.assert_close(nd_loss(s * 0.01, t, y, c, w, norm_floor=floor),
                                   ref_nd(s * 0.01, t, y, c, w, norm_floor=floor), **TOL)


def test_nd_gradcheck_and_teacher_detached():
    s, t, y, c, w = inputs(6, 4, 3, 3, invalid=())
    s.requires_grad_()
    t.requires_grad_()
    assert torch.autograd.gradcheck(lambda x: nd_loss(x, t, y, c, w), (s, ))
    nd_loss(s, t, y, c).backward()
    assert t.grad is None and s.grad.abs().sum() > 0


def test_nd_direction_and_norm_regimes():
    s, t, y, c, _ = inputs(10, 6, 4, 4, invalid=())
    e = F.normalize(c, dim=1)[y]
    big = s * (t.norm(dim=1) / s.norm(dim=1) * 2)[:, None]  # ||f_s|| >= ||f_t||: pure 1 - cos
    torch.testing.assert_close(nd_loss(big, t, y, c, eps=0), (1 - F.cosine_similarity(big, e)).mean(), **TOL)
    small = s * (t.norm(dim=1) / s.norm(dim=1) / 2)[:, None]  # ||f_s|| < ||f_t||: linear in f_s
    lin = nd_loss(small, t, y, c, eps=0)
    torch.testing.assert_close(lin, (1 - (small * e).sum(1) / t.norm(dim=1)).mean(), **TOL)
    torch.testing.assert_close(nd_loss(small * 0.5, t, y, c, eps=0) - 1, (lin - 1) * 0.5, **TOL)
    aligned = c[y] * 3 * (t.norm(dim=1) / c[y].norm(dim=1))[:, None]  # positive multiple of the class mean
    torch.testing.assert_close(nd_loss(aligned, t, y, c), torch.zeros((), **D64), atol=1e-6, rtol=0)


def test_nd_no_valid_sample_is_zero_with_grad():
    s, t, y, c, _ = inputs(5, 4, 3, 5, invalid=(0, 1, 2))
    s.requires_grad_()
    loss = nd_loss(s, t, y, c)
    loss.backward()
    assert loss.item() == 0 and s.grad is not None and torch.equal(s.grad, torch.zeros_like(s))


def test_nd_gradient_at_zero_is_bounded_with_norm_floor():
    """Both features zero (a projector output, post-ReLU embeddings): with the [PROPOSAL] norm_floor=0.1 the gradient
    is -e_y / (N * 0.1 ||c_y||); KD++'s formula (the default, norm_floor=0) gives -e_y / (N * eps)."""
    y = torch.tensor([0, 1, 1, 0])
    c = torch.tensor([[3., 0., 0.], [0., 0., 2.]])
    for scale in (0., 1e-7, 1e-4):  # zero and tiny features
        s = (torch.randn(4, 3) * scale).requires_grad_()
        loss = nd_loss(s, torch.randn(4, 3) * scale, y, c, norm_floor=0.1)
        loss.backward()
        assert torch.isfinite(loss) and abs(loss.item() - 1) < 1e-2
        assert torch.isfinite(s.grad).all()
        # per sample at most 2 / (N * 0.1 * ||c_y||)
        bound = 2 / (4 * 0.1 * c.norm(dim=1)[y])
        assert (s.grad.norm(dim=1) <= bound + 1e-6).all(), (s.grad.norm(dim=1), bound)
    s = torch.zeros(4, 3, requires_grad=True)
    nd_loss(s, torch.zeros(4, 3), y, c, norm_floor=0.1).backward()
    torch.testing.assert_close(s.grad, -F.normalize(c, dim=1)[y] / (4 * (0.1 * c.norm(dim=1)[y, None] + 1e-6)))
    s.grad = None
    nd_loss(s, torch.zeros(4, 3), y, c, eps=1e-3).backward()  # the default: KD++'s own denominator
    torch.testing.assert_close(s.grad, -F.normalize(c, dim=1)[y] / (4 * 1e-3))
    with pytest.raises(ValueError, match='norm_floor'):
        nd_loss(s, torch.zeros(4, 3), y, c, norm_floor=-1)


def test_nd_bad_input():
    s, t, y, c, _ = inputs(4, 3, 3, 6)
    with pytest.raises(ValueError, match=r'\[0, 3\)'):
        nd_loss(s, t, torch.tensor([0, 1, 2, 3]), c)
    with pytest.raises(ValueError, match='teacher_feat'):
        nd_loss(s, t[:, :2], y, c)
    with pytest.raises(TypeError, match='int64'):
        nd_loss(s, t, y.float(), c)


# ---------------------------------------------------------------------------------------------- iCD
@pytest.mark.parametrize('scales,b,k', [((1, 2, 4), 3, 5), ((1, 2), 2, 7), ((2, 3), 4, 3), ((4, ), 1, 6)])
def test_icd_matches_loop(scales, b, k):
    g = torch.Generator().manual_seed(len(scales) + b)
    p = sum(s * s for s in scales)
    zs, zt = torch.randn(b, k, p, generator=g, **D64), torch.randn(b, k, p, generator=g, **D64)
    torch.testing.assert_close(icd_loss(zs, zt, scales, tau=1.5), ref_icd(zs, zt, scales, 1.5), **TOL)


@pytest.mark.parametrize('scales', [(1, 2, 4), (1, 4), (1, 2), (1, ), (2, 4), (4, )])
def test_icd_matches_official_cluster_loss(scales):
    """The official weights (e.g. 1/4, 3/4 for scales (1, 4), not 1/3, 2/3), against the transcribed code."""
    g = torch.Generator().manual_seed(sum(scales))
    p = sum(s * s for s in scales)
    zs, zt = torch.randn(3, 7, p, generator=g, **D64) * 3, torch.randn(3, 7, p, generator=g, **D64) * 3
    mine = ICDLoss(loss_weight=2.0, scales=scales)(zs, zt)  # gamma = 2, tau = 2 as the official defaults
    if p in OFFICIAL_TABLE:
        torch.testing.assert_close(mine, official_cluster_loss(zs, zt, gamma=2.0), **TOL)
    else:  # the official code rejects (2, 4) and (4,): our extension of its rule, 1 + log2(s)
        with pytest.raises(NotImplementedError):
            official_cluster_loss(zs, zt, gamma=2.0)
        extra = {20: ([(0, 4), (4, 20)], [2 / 5, 3 / 5]), 16: ([(0, 16)], [1.0])}
        torch.testing.assert_close(mine, official_cluster_loss(zs, zt, gamma=2.0, extra_table=extra), **TOL)
    assert mine > 0 or scales == (1, )


def test_icd_gradcheck_and_properties():
    g = torch.Generator().manual_seed(0)
    zs = torch.randn(2, 4, 5, generator=g, **D64).requires_grad_()
    zt = torch.randn(2, 4, 5, generator=g, **D64)
    assert torch.autograd.gradcheck(lambda x: icd_loss(x, zt, (1, 2)), (zs, ))
    assert icd_loss(zs, zt, (1, 2)) > 0
    assert icd_loss(zs, zs.detach().clone(), (1, 2)).abs() < 1e-12
    assert icd_loss(zs[:, :, :1], zt[:, :, :1], (1, )) == 0  # the 1x1 scale is exactly 0
    # with scales (1, 2) the weights are 1/3, 2/3: the whole loss is 2/3 of the 2x2 part alone
    torch.testing.assert_close(icd_loss(zs, zt, (1, 2)), 2 / 3 * icd_loss(zs[:, :, 1:], zt[:, :, 1:], (2, )))


def test_icd_bad_region_count():
    with pytest.raises(ValueError, match='sum'):
        icd_loss(torch.randn(2, 3, 20), torch.randn(2, 3, 20), (1, 2, 4))
    with pytest.raises(ValueError, match=r'\[B, K, P\]'):
        icd_loss(torch.randn(2, 3, 21), torch.randn(2, 4, 21))


@pytest.mark.parametrize('r,k,groups', [(9, 4, 3), (20, 6, 5), (12, 3, 1)])
def test_icd_grouped_matches_loop(r, k, groups):
    g = torch.Generator().manual_seed(r)
    zs, zt = torch.randn(r, k, generator=g, **D64), torch.randn(r, k, generator=g, **D64)
    ids = torch.randint(0, groups, (r, ), generator=g) * 7  # non-contiguous ids
    ids[0] = 1000  # a singleton group
    torch.testing.assert_close(icd_grouped_loss(zs, zt, ids, 1.5), ref_grouped(zs, zt, ids, 1.5), **TOL)


def test_icd_grouped_gradcheck_and_properties():
    g = torch.Generator().manual_seed(1)
    zs = torch.randn(7, 3, generator=g, **D64).requires_grad_()
    zt = torch.randn(7, 3, generator=g, **D64)
    ids = torch.tensor([0, 1, 0, 1, 1, 2, 0])
    assert torch.autograd.gradcheck(lambda x: icd_grouped_loss(x, zt, ids), (zs, ))
    singletons = icd_grouped_loss(zs, zt, torch.arange(7))
    singletons.backward()
    assert singletons.item() == 0 and zs.grad is not None
    assert icd_grouped_loss(zs, zs.detach(), ids).abs() < 1e-12
    assert icd_grouped_loss(zs[:0], zt[:0], ids[:0]).item() == 0


# ---------------------------------------------------------------------------------------------- NC
@pytest.mark.parametrize('n,d,k,seed', SHAPES)
def test_nc1_matches_loop(n, d, k, seed):
    s, _, y, c, w = inputs(n, d, k, seed)
    for weight, center in itertools.product((None, w), (True, False)):
        con, ali = ref_nc1(s, y, c, 0.3, weight, center)
        torch.testing.assert_close(nc1_contrast_loss(s, y, c, tau=0.3, weight=weight, center=center), con, **TOL)
        torch.testing.assert_close(nc1_align_loss(s, y, c, weight=weight, center=center), ali, **TOL)


def test_centred_nc1_compares_centred_features_with_centred_prototypes():
    """Before centring (nc_icd_analysis.md) the raw student feature was compared with centred prototypes, so a student
    whose features equal the teacher's class means (shifted far from the origin, as post-ReLU features are) had
    alignment > 0. Centred on both sides it has alignment 0 and the lowest contrast, whatever common shift the
    features carry; a batch with one class carries no class direction and gives 0."""
    g = torch.Generator().manual_seed(21)
    c = torch.randn(5, 8, generator=g, **D64) + 4.0  # a large common component, as the analysis measured
    y = torch.arange(20) % 5
    feats = c[y].clone().requires_grad_()
    assert nc1_align_loss(feats, y, c) < 1e-12
    for shift in (0., -3., 10.):
        shifted = feats + shift * torch.randn(1, 8, generator=g, **D64)
        torch.testing.assert_close(nc1_align_loss(shifted, y, c), torch.zeros((), **D64), atol=1e-12, rtol=0)
        torch.testing.assert_close(nc1_contrast_loss(shifted, y, c, 0.1), nc1_contrast_loss(feats, y, c, 0.1))
    assert nc1_contrast_loss(feats, y, c, 0.1) < nc1_contrast_loss(feats[torch.randperm(20, generator=g)], y, c, 0.1)
    raw = F.cosine_similarity(feats, prototype_directions(c)[0][y])  # what the loss compared before the fix
    assert (1 - raw).mean() > 0.1
    # the per-class mean of the student features (weights given) decides the centre, not the sample counts
    y_unbalanced = torch.tensor([0] * 10 + [1, 2, 3, 4])
    torch.testing.assert_close(nc1_align_loss(c[y_unbalanced], y_unbalanced, c), torch.zeros((), **D64),
                               atol=1e-12, rtol=0)
    one = feats[y == 2].detach().clone().requires_grad_()
    loss = nc1_contrast_loss(one, y[y == 2], c)
    loss.backward()
    assert loss.item() == 0 and torch.equal(one.grad, torch.zeros_like(one))


def test_prototype_directions_and_cosine_logits():
    _, _, _, c, _ = inputs(4, 5, 6, 7, invalid=(2, ))
    d, ok = prototype_directions(c)
    rd, rok = ref_directions(c)
    torch.testing.assert_close(d, rd, **TOL)
    assert ok.tolist() == rok
    logits = prototype_cosine_logits(c[:3] * 2, c, scale=10)
    assert torch.isinf(logits[:, 2]).all() and logits[:, ok].abs().max() <= 10 + 1e-9
    one, ok1 = prototype_directions(c[:1])  # a single class centres to zero: nothing valid
    assert not ok1.any() and one.abs().sum() == 0


@pytest.mark.parametrize('n,d,k,seed', SHAPES)
def test_nc2_matches_loop(n, d, k, seed):
    s, _, y, c, w = inputs(n, d, k, seed)
    for kwargs in (dict(), dict(weight=w), dict(ignore_index=0), dict(center=False)):
        torch.testing.assert_close(nc2_loss(s, y, c, **kwargs), ref_nc2(s, y, c, **kwargs), **TOL)


def test_nc2_properties():
    s, _, y, c, _ = inputs(12, 5, 4, 8, invalid=())
    y = torch.arange(12) % 4
    # student batch means equal to positive multiples of the teacher prototypes -> 0
    assert nc2_loss(c[y] * 3.0, y, c) < 1e-12
    assert nc2_loss(c[y] * 3.0, y, c, center=False) < 1e-12
    assert nc2_loss(s, y, c) > 0
    one = s.clone().requires_grad_()
    loss = nc2_loss(one, torch.zeros(12, dtype=torch.long), c)  # a single class present
    loss.backward()
    assert loss.item() == 0 and one.grad is not None
    with pytest.raises(ValueError, match='ignore_index'):
        nc2_loss(s, y, c, ignore_index=4)


def test_nc2_two_centred_classes_are_skipped_and_reported():
    """Two centred class means are antipodal on both sides (cosine -1): the centred term carries nothing, so it is
    reported as skipped (S returned); uncentred it compares the two means' angle and has a gradient."""
    s, _, _, c, _ = inputs(12, 5, 4, 8, invalid=())
    y = torch.arange(12) % 2
    s.requires_grad_()
    loss, num = nc2_loss(s, y, c, center=True, return_num_classes=True)
    assert num == 2 and loss.item() == 0
    loss.backward()
    assert torch.equal(s.grad, torch.zeros_like(s))
    s.grad = None
    loss, num = nc2_loss(s, y, c, center=False, return_num_classes=True)
    loss.backward()
    assert num == 2 and loss > 0 and s.grad.abs().sum() > 0
    y3 = torch.arange(12) % 3
    loss, num = nc2_loss(s, y3, c, return_num_classes=True)
    assert num == 3 and loss > 0
    _, num = nc2_loss(s, y3, c, ignore_index=0, return_num_classes=True)
    assert num == 2


def test_nc3_matches_loop_and_extra_rows():
    _, _, _, c, _ = inputs(3, 5, 6, 9, invalid=(4, ))
    w = torch.randn(7, 5, **D64)  # one extra (background) row, ignored
    torch.testing.assert_close(nc3_align_loss(w, c), ref_nc3(w[:6], c), **TOL)
    d, _ = prototype_directions(c)
    assert nc3_align_loss(d * 5, c) < 1e-12
    mask = torch.tensor([True, True, False, True, True, True])
    assert not torch.isclose(nc3_align_loss(w, c, valid=mask), nc3_align_loss(w, c))
    with pytest.raises(ValueError, match='rows'):
        nc3_align_loss(w[:5], c)
    # degenerate sides follow ||a^ - b^||^2 with the unit of a zero vector taken as 0
    assert nc3_align_loss(torch.zeros(6, 5, **D64), c) == 1
    assert nc3_align_loss(w, c, valid=torch.zeros(6, dtype=torch.bool)) == 0


def test_nc_gradcheck():
    s, _, y, c, w = inputs(6, 3, 4, 10)
    s.requires_grad_()
    wc = torch.randn(4, 3, **D64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: nc1_contrast_loss(x, y, c, 0.5, w), (s, ))
    assert torch.autograd.gradcheck(lambda x: nc1_align_loss(x, y, c, w), (s, ))
    assert torch.autograd.gradcheck(lambda x: nc2_loss(x, y, c, w), (s, ))
    assert torch.autograd.gradcheck(lambda x: nc3_align_loss(x, c), (wc, ))


# ---------------------------------------------------------------------------------------------- edge cases
def all_losses(s, t, y, c, w, logits_s, logits_t, regions_s, regions_t, groups):
    return dict(
        nd=nd_loss(s, t, y, c, norm_floor=0.1),  # KD++'s 1/eps gradient at f_s = f_t = 0 overflows float16
        nc1_contrast=nc1_contrast_loss(s, y, c),
        nc1_align=nc1_align_loss(s, y, c),
        nc2=nc2_loss(s, y, c, ignore_index=0),
        nc3=nc3_align_loss(w, c),
        icd=icd_loss(regions_s, regions_t),
        icd_grouped=icd_grouped_loss(logits_s, logits_t, groups))


@pytest.mark.parametrize('case,dtype', itertools.product(['zeros', 'empty', 'missing'], ['bf16-autocast', 'fp16']))
def test_finite_in_low_precision(case, dtype):
    n = 0 if case == 'empty' else 8
    g = torch.Generator().manual_seed(11)
    low = torch.bfloat16 if dtype == 'bf16-autocast' else torch.float16
    s = torch.zeros(n, 6) if case == 'zeros' else torch.randn(n, 6, generator=g)
    t = torch.zeros(n, 6) if case == 'zeros' else torch.randn(n, 6, generator=g)
    c = torch.rand(5, 6, generator=g)
    if case == 'missing':
        c[1:4] = 0
    y = torch.randint(0, 5, (n, ), generator=g)
    zs = torch.zeros(n, 5) if case == 'zeros' else torch.randn(n, 5, generator=g)
    rs = torch.zeros(n, 5, 21) if case == 'zeros' else torch.randn(n, 5, 21, generator=g)
    w = torch.zeros(5, 6) if case == 'zeros' else torch.randn(5, 6, generator=g)
    s, t, w, zs, rs = (x.to(low).requires_grad_() for x in (s, t, w, zs, rs))
    args = (s, t, y, c.to(low), w, zs, zs.detach() + 1, rs, rs.detach() * 2, torch.arange(n) % 3)
    if dtype == 'bf16-autocast':
        with torch.autocast('cpu', dtype=torch.bfloat16):
            losses = all_losses(*args)
    else:
        losses = all_losses(*args)
    for name, loss in losses.items():
        assert loss.dtype == torch.float32 and torch.isfinite(loss), name
    sum(losses.values()).backward()  # ND included: its gradient at f_s = f_t = 0 is bounded (norm_floor)
    for x in (s, w, zs, rs):
        assert x.grad is not None and torch.isfinite(x.grad).all()


def degenerate_inputs(case):
    """(student feat, teacher feat, labels, class means, classifier, region logits s/t, RoI logits s/t, groups)."""
    g = torch.Generator().manual_seed(12)
    n, d, k = dict(one=(1, 4, 3), same_class=(6, 4, 3), zeros=(6, 4, 3), k1=(5, 4, 1), empty=(0, 4, 3))[case]
    s, t = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
    c = torch.randn(k, d, generator=g) + 1
    y = torch.randint(0, k, (n, ), generator=g)
    rs, rt = torch.randn(n, k, 21, generator=g), torch.randn(n, k, 21, generator=g)
    ls, lt = torch.randn(n, k, generator=g), torch.randn(n, k, generator=g)
    if case == 'same_class':
        y = torch.zeros(n, dtype=torch.long)
    if case == 'zeros':
        s, t, rs, rt, ls, lt = (torch.zeros_like(x) for x in (s, t, rs, rt, ls, lt))
    return s, t, y, c, torch.randn(k, d, generator=g), rs, rt, ls, lt, torch.zeros(n, dtype=torch.long)


@pytest.mark.parametrize('case', ['one', 'same_class', 'zeros', 'k1', 'empty'])
@pytest.mark.parametrize('center', [True, False])
def test_degenerate_inputs_give_finite_losses_and_gradients(case, center):
    """One sample, a single class, all-zero features / logits, K = 1, no sample or RoI at all: every loss and its
    gradient is finite."""
    s, t, y, c, w, rs, rt, ls, lt, groups = degenerate_inputs(case)
    s, w, rs, ls = (x.requires_grad_() for x in (s, w, rs, ls))
    losses = dict(
        nd=nd_loss(s, t, y, c),  # KD++'s formula
        nd_floor=nd_loss(s, t, y, c, norm_floor=0.1),
        nc1_contrast=nc1_contrast_loss(s, y, c, center=center),
        nc1_align=nc1_align_loss(s, y, c, center=center),
        nc2=nc2_loss(s, y, c, center=center),
        nc3=nc3_align_loss(w, c, center=center),
        cosine_logits=prototype_cosine_logits(s, c, center=center).clamp_min(-1e4).sum(),
        icd=icd_loss(rs, rt),
        icd_grouped=icd_grouped_loss(ls, lt, groups))
    for name, loss in losses.items():
        assert loss.dim() == 0 and torch.isfinite(loss), name
        grads = torch.autograd.grad(loss, (s, w, rs, ls), allow_unused=True)
        assert all(g is None or torch.isfinite(g).all() for g in grads), name
