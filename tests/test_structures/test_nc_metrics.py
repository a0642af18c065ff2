"""Neural-collapse metrics against a reference written with numpy loops from the formulas of Papyan, Han &
Donoho (PNAS 2020): NC1 (Fig. 6), NC2 equal norms / equal angles / maximal angles (Figs. 2-4), NC3 (Fig. 5),
NC4 (Fig. 7), and the distance-to-ETF summary of NC2."""
import itertools

import numpy as np
import pytest
import torch

from mmkd.structures.nc_metrics import (feature_class_means, nc1, nc2, nc2_equiangle, nc2_equinorm, nc2_maxangle,
                                        nc3, nc4, nc_summary)


# ---------------------------------------------------------------------------------------------- numpy reference
def ref_class_means(h, y, classes):
    """{class: mean of its samples} and the global mean: the average of the class means (each class counts
    once; the paper's avg_{i,c} h_{i,c} on balanced data)."""
    mu = {c: np.mean([h[i] for i in range(len(h)) if y[i] == c], axis=0) for c in classes}
    return mu, np.mean([mu[c] for c in classes], axis=0)


def ref_nc1(h, y, classes):
    mu, mu_g = ref_class_means(h, y, classes)
    d = h.shape[1]
    sigma_w, n = np.zeros((d, d)), 0
    for i in range(len(h)):
        if y[i] in classes:
            v = h[i] - mu[y[i]]
            sigma_w += np.outer(v, v)
            n += 1
    sigma_w /= n
    sigma_b = sum(np.outer(mu[c] - mu_g, mu[c] - mu_g) for c in classes) / len(classes)
    return np.trace(sigma_w @ np.linalg.pinv(sigma_b)) / len(classes)


def cos(a, b):
    return a @ b / (np.linalg.norm(a) * np.linalg.norm(b))


def ref_nc2_parts(vectors):
    """(equinorm, equiangle, maxangle) of a list of vectors: std/avg of the norms; std of the pairwise cosines
    (each unordered pair once, sample std); average over ordered pairs k != k' of |cos + 1/(K-1)|."""
    k = len(vectors)
    norms = [np.linalg.norm(v) for v in vectors]
    pairs = [cos(vectors[a], vectors[b]) for a, b in itertools.combinations(range(k), 2)]
    ordered = [abs(cos(vectors[a], vectors[b]) + 1 / (k - 1)) for a in range(k) for b in range(k) if a != b]
    return (np.std(norms, ddof=1) / np.mean(norms), np.std(pairs, ddof=1) if len(pairs) > 1 else 0.,
            np.mean(ordered))


def ref_centred(means_by_class):
    classes = sorted(means_by_class)
    mu_g = np.mean([means_by_class[c] for c in classes], axis=0)
    return np.stack([means_by_class[c] - mu_g for c in classes])


def ref_nc2_etf(m):
    k = len(m)
    gram = m @ m.T
    return np.linalg.norm(gram / np.linalg.norm(gram) - (np.eye(k) - np.ones((k, k)) / k) / np.sqrt(k - 1))


def ref_nc3(w, m):
    return np.linalg.norm(w / np.linalg.norm(w) - m / np.linalg.norm(m))


def ref_nc4(h, y, logits, classes):
    mu, _ = ref_class_means(h, y, classes)
    wrong = total = 0
    for i in range(len(h)):
        if y[i] not in classes:
            continue
        nearest = min(classes, key=lambda c: np.linalg.norm(h[i] - mu[c]))
        predicted = max(classes, key=lambda c: logits[i, c])
        wrong += nearest != predicted
        total += 1
    return wrong / total


def t(x):
    return torch.from_numpy(np.asarray(x))


# ---------------------------------------------------------------------------------------------- tests
@pytest.mark.parametrize('n,d,k,seed', [(30, 4, 4, 0), (50, 6, 6, 1), (40, 3, 8, 2), (60, 12, 5, 3)])
def test_every_metric_matches_the_papers_formulas(n, d, k, seed):
    rng = np.random.default_rng(seed)
    h = rng.normal(size=(n, d)) + rng.normal(size=(1, d)) * 3  # a common offset: centring matters
    y = rng.integers(0, k - 1, n)  # class k-1 absent
    w = rng.normal(size=(k + 1, d))  # one extra (background) row, ignored
    logits = rng.normal(size=(n, k + 1))
    present = sorted(set(y.tolist()))
    mu, _ = ref_class_means(h, y, present)
    m = ref_centred(mu)
    out = nc_summary(t(h).float(), t(y), k, t(w), t(logits))
    expected = dict(nc1=ref_nc1(h, y, present), nc2=ref_nc2_etf(m), nc3=ref_nc3(w[present], m),
                    nc4=ref_nc4(h, y, logits, present))
    expected.update(zip(('nc2_equinorm', 'nc2_equiangle', 'nc2_maxangle'), ref_nc2_parts(list(m))))
    expected.update(zip(('nc2w_equinorm', 'nc2w_equiangle', 'nc2w_maxangle'), ref_nc2_parts(list(w[present]))))
    assert out.keys() == expected.keys()
    for key, value in expected.items():
        assert out[key] == pytest.approx(value, rel=1e-4, abs=1e-9), key
    # a class mask: the excluded class's samples leave every metric
    used = present[1:]
    valid = torch.zeros(k, dtype=torch.bool)
    valid[used] = True
    rows = np.isin(y, used)
    mu, _ = ref_class_means(h[rows], y[rows], used)
    m = ref_centred(mu)
    assert nc1(t(h), t(y), k, valid) == pytest.approx(ref_nc1(h, y, used), rel=1e-9)
    means, _ = feature_class_means(t(h), t(y), k)
    assert nc2(means, valid) == pytest.approx(ref_nc2_etf(m), rel=1e-9)
    assert nc2_equinorm(means, valid) == pytest.approx(ref_nc2_parts(list(m))[0], rel=1e-9)
    assert nc2_equiangle(means, valid) == pytest.approx(ref_nc2_parts(list(m))[1], rel=1e-9)
    assert nc2_maxangle(means, valid) == pytest.approx(ref_nc2_parts(list(m))[2], rel=1e-9)
    assert nc3(t(w), means, valid) == pytest.approx(ref_nc3(w[used], m), rel=1e-9)
    assert nc4(t(h), t(y), t(logits), k, valid) == pytest.approx(ref_nc4(h, y, logits, used))


def simplex_etf(k, d, scale=3.0, seed=0):
    """``k`` centred means of equal norm ``scale`` with pairwise cosine ``-1/(k-1)``, in ``R^d``, rotated."""
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))
    etf = (np.eye(k) - 1 / k) * np.sqrt(k / (k - 1))  # unit rows
    return scale * etf @ q[:k]


def test_collapse_gives_zeros():
    k, d = 5, 7
    means = simplex_etf(k, d) + 2.0  # shifted: centring undoes it
    labels = np.repeat(np.arange(k), 4)
    h = means[labels] + 1e-6 * np.random.default_rng(1).normal(size=(len(labels), d))
    w = 0.3 * (means - means.mean(0))  # self-dual classifier
    logits = (h - means.mean(0)) @ w.T  # the classifier's bias -<w_k, mu_G> absorbs the shift
    out = nc_summary(t(h), t(labels), k, t(w), t(logits))
    for key, value in out.items():
        assert value < 1e-5, (key, value)


def test_unequal_norms_are_seen_by_nc2_and_nc3():
    """Equal angles but unequal norms: the row-normalised forms (an earlier reading of NC2) score 0, the
    paper's NC2 equal-norm statistic and the un-normalised NC2 summary / NC3 do not."""
    k, d = 4, 6
    etf = simplex_etf(k, d)
    means = t(etf)
    assert nc2(means) < 1e-10 and nc2_equinorm(means) < 1e-10 and nc2_maxangle(means) < 1e-10
    w = etf * np.array([1., 2., 1., 3.])[:, None]  # same directions, unequal norms
    assert nc3(t(w), means) > 0.1
    assert nc_summary(t(etf), torch.arange(k), k, t(w))['nc2w_equinorm'] > 0.3
    stretched = etf.copy()
    stretched[0] *= 4  # unequal norms of the class means
    centred = stretched - stretched.mean(0)
    assert nc2_equinorm(t(stretched)) == pytest.approx(ref_nc2_parts(list(centred))[0])
    assert nc2(t(stretched)) > 0.1
    assert nc3(t(0.5 * centred), t(stretched)) < 1e-12  # self-dual with the un-normalised means
    unit = centred / np.linalg.norm(centred, axis=1, keepdims=True)
    assert nc3(t(unit), t(stretched)) > 0.1  # the unit-row classifier is not


def test_two_classes_and_bad_input():
    means = torch.tensor([[1., 0.], [0., 3.]], dtype=torch.float64)
    assert nc2_equiangle(means) == 0 and nc2_maxangle(means) < 1e-12 and nc2_equinorm(means) < 1e-12
    with pytest.raises(ValueError, match='at least 2'):
        nc2(torch.randn(3, 2), torch.tensor([True, False, False]))
    with pytest.raises(ValueError, match='at least 2'):
        nc1(torch.randn(4, 2), torch.zeros(4, dtype=torch.long), 3)
    with pytest.raises(ValueError, match='classifier_weight'):
        nc3(torch.randn(2, 2), torch.randn(3, 2))
    with pytest.raises(ValueError, match='valid must be a bool'):
        nc2(torch.randn(3, 2), torch.ones(2, dtype=torch.bool))
    with pytest.raises(ValueError, match='logits'):
        nc4(torch.randn(4, 2), torch.arange(4) % 2, torch.randn(3, 2), 2)
    with pytest.raises(ValueError, match=r'\[0, 3\)'):
        nc1(torch.randn(4, 2), torch.tensor([0, 1, 2, 3]), 3)
