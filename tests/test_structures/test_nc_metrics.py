"""Neural-collapse metrics against direct numpy implementations."""
import numpy as np
import pytest
import torch

from mmkd.structures import nc1, nc2, nc3


def np_centred_unit(means):
    centred = means - means.mean(0)
    return centred / np.linalg.norm(centred, axis=1, keepdims=True)


def np_nc1(feats, labels, k):
    classes = [c for c in range(k) if (labels == c).any()]
    means = {c: feats[labels == c].mean(0) for c in classes}
    mu_g = np.mean([means[c] for c in classes], 0)
    d = feats.shape[1]
    sw, sb = np.zeros((d, d)), np.zeros((d, d))
    for h, y in zip(feats, labels):
        sw += np.outer(h - means[y], h - means[y]) / len(feats)
    for c in classes:
        sb += np.outer(means[c] - mu_g, means[c] - mu_g) / len(classes)
    return np.trace(sw @ np.linalg.pinv(sb)) / len(classes)


def np_nc2(means):
    m = np_centred_unit(means)
    k = len(m)
    gram = m @ m.T
    return np.linalg.norm(gram / np.linalg.norm(gram) - (np.eye(k) - np.ones((k, k)) / k) / np.sqrt(k - 1))


def np_nc3(w, means):
    m = np_centred_unit(means)
    return np.linalg.norm(w / np.linalg.norm(w) - m / np.linalg.norm(m))


@pytest.mark.parametrize('n,d,k,seed', [(30, 4, 3, 0), (50, 6, 6, 1), (40, 3, 8, 2)])
def test_metrics_match_numpy(n, d, k, seed):
    rng = np.random.default_rng(seed)
    feats, labels = rng.normal(size=(n, d)), rng.integers(0, k - 1, n)  # class k-1 absent
    assert nc1(torch.from_numpy(feats).float(), torch.from_numpy(labels), k) == pytest.approx(
        np_nc1(feats, labels, k), rel=1e-4)
    means = rng.normal(size=(k, d))
    w = rng.normal(size=(k + 1, d))
    assert nc2(torch.from_numpy(means)) == pytest.approx(np_nc2(means), rel=1e-9)
    assert nc3(torch.from_numpy(w), torch.from_numpy(means)) == pytest.approx(np_nc3(w[:k], means), rel=1e-9)
    valid = torch.ones(k, dtype=torch.bool)
    valid[0] = False
    assert nc2(torch.from_numpy(means), valid) == pytest.approx(np_nc2(means[1:]), rel=1e-9)
    assert nc3(torch.from_numpy(w), torch.from_numpy(means), valid) == pytest.approx(np_nc3(w[1:k], means[1:]),
                                                                                       rel=1e-9)


def test_collapsed_simplex_etf():
    k = 5
    etf = torch.eye(k, dtype=torch.float64) - 1 / k  # rows: a simplex ETF in R^k
    means = etf * 3 + 2  # scaled and shifted: centring and normalisation undo both
    assert nc2(means) < 1e-10
    assert nc3(etf * 7, means) < 1e-10
    feats = means.repeat(4, 1) + 1e-4 * torch.randn(4 * k, k, dtype=torch.float64)
    assert nc1(feats, torch.arange(k).repeat(4), k) < 1e-6
    assert nc2(torch.randn(k, 3, dtype=torch.float64)) > 0.1


def test_metrics_bad_input():
    with pytest.raises(ValueError, match='at least 2'):
        nc2(torch.randn(3, 2), torch.tensor([True, False, False]))
    with pytest.raises(ValueError, match='at least 2'):
        nc1(torch.randn(4, 2), torch.zeros(4, dtype=torch.long), 3)
    with pytest.raises(ValueError, match='classifier_weight'):
        nc3(torch.randn(2, 2), torch.randn(3, 2))
