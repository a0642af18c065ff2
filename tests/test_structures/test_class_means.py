"""ClassMeans: exact / EMA updates against loops, validity, persistence and atomic save, ranks kept identical."""
import hashlib
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mmkd.structures import ClassMeans
from mmkd.structures.class_means import checkpoint_identity


def loop_means(feats, labels, k, weight=None):
    means, counts = torch.zeros(k, feats.shape[1], dtype=torch.float64), torch.zeros(k, dtype=torch.float64)
    for c in range(k):
        num, den = torch.zeros(feats.shape[1], dtype=torch.float64), 0.
        for i in range(feats.shape[0]):
            w = 1. if weight is None else max(float(weight[i]), 0.)
            if labels[i] == c:
                num, den = num + w * feats[i].double(), den + w
        counts[c] = den
        if den > 0:
            means[c] = num / den
    return means, counts


def batches(k=5, d=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(n, d, generator=g), torch.randint(0, k - 1, (n, ), generator=g), torch.rand(n, generator=g))
            for n in (7, 1, 12, 0)]  # class k-1 never seen


@pytest.mark.parametrize('weighted', [False, True])
def test_exact_update_matches_loop(weighted):
    cm = ClassMeans(5, 3)
    data = batches()
    for feats, labels, weight in data:
        cm.update(feats, labels, weight if weighted else None)
    feats, labels, weight = (torch.cat(x) for x in zip(*data))
    means, counts = loop_means(feats, labels, 5, weight if weighted else None)
    torch.testing.assert_close(cm.means, means.float())
    torch.testing.assert_close(cm.counts, counts)
    assert cm.valid.tolist() == (counts > 0).tolist() and cm.initialized
    assert cm.sums.dtype == torch.float64 and cm.means.dtype == torch.float32


def test_ema_update():
    cm = ClassMeans(5, 3, momentum=0.25)
    data = batches(seed=1)
    expected = torch.zeros(5, 3, dtype=torch.float64)
    seen = torch.zeros(5, dtype=torch.bool)
    for feats, labels, _ in data:
        cm.update(feats, labels)
        batch_means, batch_counts = loop_means(feats, labels, 5)
        for c in range(5):
            if batch_counts[c] > 0:
                expected[c] = 0.75 * expected[c] + 0.25 * batch_means[c] if seen[c] else batch_means[c]
                seen[c] = True
    torch.testing.assert_close(cm.means, expected.float())
    assert cm.valid.tolist() == seen.tolist()


def test_validity_reset_and_bad_input():
    cm = ClassMeans(3, 2)
    assert not cm.initialized and not cm.valid.any()
    cm.update(torch.tensor([[0., 0.], [1., 2.]]), torch.tensor([0, 1]))
    assert cm.valid.tolist() == [False, True, False]  # a zero mean and a class never seen are invalid
    cm.means[1, 0] = float('inf')  # (e.g. restored from a bad checkpoint)
    assert cm.valid.tolist() == [False, False, False]  # a non-finite mean is invalid
    cm.reset()
    assert not cm.initialized and cm.counts.sum() == 0
    with pytest.raises(ValueError, match=r'\[0, 3\)'):
        cm.update(torch.ones(1, 2), torch.tensor([3]))
    with pytest.raises(ValueError, match=r'\[N, 2\]'):
        cm.update(torch.ones(1, 3), torch.tensor([0]))
    with pytest.raises(ValueError, match='momentum'):
        ClassMeans(3, 2, momentum=0.)


def test_state_dict_and_all_reduce_single_process():
    cm = ClassMeans(4, 2)
    cm.update(torch.randn(6, 2), torch.arange(6) % 4)
    state = cm.state_dict()
    assert sorted(state) == ['counts', 'means', 'sums']
    before = {k: v.clone() for k, v in state.items()}
    cm.all_reduce()  # not distributed: no change
    for k, v in cm.state_dict().items():
        assert torch.equal(v, before[k])
    other = ClassMeans(4, 2)
    other.load_state_dict(state)
    assert torch.equal(other.means, cm.means)


def test_save_load_round_trip(tmp_path):
    cm = ClassMeans(4, 3)
    cm.update(torch.randn(10, 3), torch.arange(10) % 3)
    path = str(tmp_path / 'sub' / 'means.pth')
    cm.save(path, meta=dict(teacher='r101', iters=3))
    assert os.listdir(tmp_path / 'sub') == ['means.pth']  # no temporary left behind
    loaded = ClassMeans(4, 3)
    assert loaded.load(path) == dict(teacher='r101', iters=3)
    for name in ('means', 'counts'):
        assert torch.equal(getattr(loaded, name), getattr(cm, name))
    torch.testing.assert_close(loaded.sums, cm.sums)
    feats, labels = torch.randn(5, 3), torch.arange(5) % 4  # exact updates continue the same average
    loaded.update(feats, labels)
    cm.update(feats, labels)
    torch.testing.assert_close(loaded.means, cm.means)


def test_load_errors_leave_everything_untouched(tmp_path):
    path = str(tmp_path / 'means.pth')
    ClassMeans(4, 3).save(path)
    with open(path, 'rb') as f:
        original = f.read()
    target = ClassMeans(5, 3)
    target.update(torch.randn(4, 3), torch.arange(4))
    before = target.means.clone()
    with pytest.raises(ValueError) as err:
        target.load(path)
    msg = str(err.value)
    assert path in msg and '[5, 3]' in msg and '[4, 3]' in msg and 'compute_class_means.py' in msg
    assert torch.equal(target.means, before)
    with open(path, 'rb') as f:
        assert f.read() == original
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        target.load(str(tmp_path / 'missing.pth'))
    torch.save(dict(foo=1), str(tmp_path / 'other.pth'))
    with pytest.raises(ValueError, match='not a class-means file'):
        target.load(str(tmp_path / 'other.pth'))


def test_save_is_atomic(tmp_path, monkeypatch):
    path = str(tmp_path / 'means.pth')
    cm = ClassMeans(3, 2)
    cm.update(torch.ones(3, 2), torch.arange(3))
    cm.save(path)
    with open(path, 'rb') as f:
        original = f.read()

    def broken_save(obj, f, *args, **kwargs):
        f.write(b'half a file')
        raise OSError('disk full')

    monkeypatch.setattr(torch, 'save', broken_save)
    cm.update(torch.full((3, 2), 5.), torch.arange(3))
    with pytest.raises(OSError, match='disk full'):
        cm.save(path)
    with open(path, 'rb') as f:
        assert f.read() == original
    assert os.listdir(tmp_path) == ['means.pth']


def test_coverage_names_the_classes_without_a_mean():
    cm = ClassMeans(30, 2)
    assert cm.coverage().startswith('0/30 classes (none for classes [0, 1, ') and 'and 10 more' in cm.coverage()
    cm.update(torch.ones(29, 2), torch.arange(29))
    assert cm.coverage() == '29/30 classes (none for class [29])'
    cm.update(torch.ones(1, 2), torch.tensor([29]))
    assert cm.coverage() == '30/30 classes'


def test_checkpoint_identity_is_the_files_sha256(tmp_path):
    path = tmp_path / 'teacher.pth'
    path.write_bytes(b'weights')
    assert checkpoint_identity(str(path)) == dict(teacher_ckpt=str(path),
                                                  teacher_sha256=hashlib.sha256(b'weights').hexdigest())
    path.write_bytes(b'other weights')  # rewritten in place: hashed again
    assert checkpoint_identity(str(path))['teacher_sha256'] == hashlib.sha256(b'other weights').hexdigest()
    assert checkpoint_identity('https://example.com/teacher.pth')['teacher_sha256'] is None
    assert checkpoint_identity(None) == dict(teacher_ckpt=None, teacher_sha256=None)


def _ema_rank(rank: int, port: int, out: str) -> None:
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank, world_size=2)
    try:
        cm = ClassMeans(5, 3, momentum=0.25)
        for feats, labels, weight in batches(seed=10 + rank):  # each rank its own batches
            cm.update(feats, labels, weight)
        cm.all_reduce()  # what compute_class_means does after its pass
        torch.save(dict(cm.state_dict()), os.path.join(out, f'rank{rank}.pth'))
    finally:
        dist.destroy_process_group()


def test_ema_updates_are_global_and_identical_on_every_rank(tmp_path):
    """DDP does not broadcast buffers: each rank must reach the same EMA means by itself, namely the EMA over
    the global batches (the ranks' batches together)."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    mp.spawn(_ema_rank, args=(port, str(tmp_path)), nprocs=2)
    ranks = [torch.load(tmp_path / f'rank{r}.pth', weights_only=True) for r in (0, 1)]
    single = ClassMeans(5, 3, momentum=0.25)
    for step in zip(batches(seed=10), batches(seed=11)):
        single.update(*(torch.cat(parts) for parts in zip(*step)))
    for key in ('means', 'counts', 'sums'):
        assert torch.equal(ranks[0][key], ranks[1][key]), key
        torch.testing.assert_close(ranks[0][key], single.state_dict()[key])


def test_non_finite_input_never_reaches_the_means():
    """Exact mode: refused with a FloatingPointError; EMA mode: the whole batch is ignored (decided on the device),
    also when ``accept`` is False; nothing changes either way."""
    feats, labels = torch.rand(6, 3) + 0.1, torch.arange(3).repeat(2)
    bad = feats.clone()
    bad[4, 1] = float('nan')
    exact = ClassMeans(3, 3)
    exact.update(feats, labels)
    state = {k: v.clone() for k, v in exact.state_dict().items()}
    for f, w in ((bad, None), (feats, torch.tensor([1., 1., float('inf'), 1., 1., 1.]))):
        with pytest.raises(FloatingPointError, match='1 NaN and 0 Inf of 18 values|1 non-finite'):
            exact.update(f, labels, w)
        assert all(torch.equal(v, state[k]) for k, v in exact.state_dict().items())
    ema = ClassMeans(3, 3, momentum=0.5)
    ema.update(feats, labels)
    state = {k: v.clone() for k, v in ema.state_dict().items()}
    bad[:] = float('inf')
    for f, accept in ((bad, None), (torch.full_like(feats, float('nan')), None), (feats, torch.tensor(False))):
        ema.update(f, labels, accept=accept)
        assert all(torch.equal(v, state[k]) for k, v in ema.state_dict().items())
    ema.update(feats * 2, labels, accept=torch.tensor(True))
    torch.testing.assert_close(ema.means, (1.5 * state['means'].double()).float())  # (1 - m) c + m 2c


def test_non_finite_means_are_never_saved_or_loaded(tmp_path):
    cm = ClassMeans(3, 2)
    cm.update(torch.rand(3, 2) + 0.1, torch.arange(3))
    path = tmp_path / 'means.pth'
    cm.save(str(path))
    written = path.read_bytes()
    good = cm.means.clone()
    cm.means[2, 1] = float('nan')
    with pytest.raises(FloatingPointError, match=r'class \[2\] are not finite.*was not written'):
        cm.save(str(path))
    assert path.read_bytes() == written and sorted(os.listdir(tmp_path)) == ['means.pth']
    torch.save(dict(means=cm.means.clone(), counts=cm.counts.clone()), tmp_path / 'nan.pth')
    fresh = ClassMeans(3, 2)
    fresh.load(str(path))
    with pytest.raises(ValueError, match='hold NaN/Inf values; nothing was loaded'):
        fresh.load(str(tmp_path / 'nan.pth'))
    torch.testing.assert_close(fresh.means, good)
