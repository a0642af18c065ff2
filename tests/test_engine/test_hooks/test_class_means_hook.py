"""ClassMeansHook: loading a class-means file (shape and teacher checked), the coverage warning, a teacher pass
of one epoch over all ranks whatever the sampler, and a stop on non-finite teacher features."""
import types

import pytest
import torch
from mmengine.registry import DefaultScope
from mmengine.structures import BaseDataElement

import mmkd  # noqa: F401
from mmkd.engine.hooks import ClassMeansHook, class_means_hook
from mmkd.registry import MODELS
from mmkd.structures import ClassMeans
from mmkd.structures.class_means import checkpoint_identity
from mmkd.testing import randomise_batchnorms

K, D = 5, 64


@pytest.fixture(autouse=True)
def mmkd_scope():
    with DefaultScope.overwrite_default_scope('mmkd'):
        yield


def classifier(arch: str) -> dict:
    return dict(type='ImageClassifier', backbone=dict(type='CIFARResNet', arch=arch),
                head=dict(type='LinearClsHead', num_classes=K, in_channels=D))


def teacher_ckpt(tmp_path, name: str, seed: int) -> str:
    torch.manual_seed(seed)
    path = str(tmp_path / name)
    torch.save(dict(state_dict=randomise_batchnorms(MODELS.build(classifier('resnet14')), seed).state_dict()), path)
    return path


def algorithm(teacher_ckpt=None, allow_random_teacher=None):
    """ClsDistill with ND (which needs the class means), class means still empty; without ``teacher_ckpt`` a
    random teacher, allowed unless ``allow_random_teacher=False``."""
    return MODELS.build(dict(
        type='ClsDistill', architecture=classifier('resnet8'), teacher=classifier('resnet14'),
        teacher_ckpt=teacher_ckpt, class_means=dict(),
        allow_random_teacher=teacher_ckpt is None if allow_random_teacher is None else allow_random_teacher,
        distiller=dict(type='ConfigurableDistiller', distill_losses=dict(loss_nd=dict(type='NDLoss')),
                       loss_forward_mappings=dict(loss_nd=dict(
                           student_feat=dict(recorder='feat', from_student=True),
                           teacher_feat=dict(recorder='feat', from_student=False),
                           labels=dict(recorder='labels', from_student=True, data_idx=1))))))


class TinyData(torch.utils.data.Dataset):
    """``n`` random 32x32 images, image ``i`` of class ``i % K``."""

    def __init__(self, n: int = 10):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return dict(inputs=torch.randn(3, 32, 32, generator=g),
                    data_samples=BaseDataElement(gt_label=torch.tensor([i % K])))


class Logger:

    def __init__(self):
        self.infos, self.warnings = [], []

    def info(self, msg):
        self.infos.append(msg)

    def warning(self, msg):
        self.warnings.append(msg)


def fake_runner(model, tmp_path, sampler='DefaultSampler', n=10, batch_size=2):
    """What the hook reads of a Runner (a real one would first train or load nothing but this model)."""
    dataloader = dict(dataset=TinyData(n), sampler=dict(type=sampler, shuffle=False), batch_size=batch_size,
                      num_workers=0, collate_fn=dict(type='default_collate'))
    return types.SimpleNamespace(model=model, logger=Logger(), log_dir=str(tmp_path / 'log'), seed=0,
                                 cfg=types.SimpleNamespace(train_dataloader=dataloader, filename='config.py'))


def means_file(tmp_path, teacher=None, num_classes=K, classes=K, name='means.pth'):
    cm = ClassMeans(num_classes, D)
    cm.update(torch.rand(2 * classes, D) + 0.1, torch.arange(classes).repeat(2))
    path = str(tmp_path / name)
    cm.save(path, meta=dict(config='x.py', **checkpoint_identity(teacher)))
    return path, cm.means.clone()


def test_file_is_loaded_and_its_teacher_checked(tmp_path):
    ckpt = teacher_ckpt(tmp_path, 'teacher.pth', seed=0)
    path, means = means_file(tmp_path, teacher=ckpt)
    before = open(path, 'rb').read()
    model = algorithm(ckpt)
    runner = fake_runner(model, tmp_path)
    ClassMeansHook(file=path).before_train(runner)
    assert torch.equal(model.class_means.means, means)
    assert not runner.logger.warnings and any('cover 5/5 classes' in m for m in runner.logger.infos)

    # the same file for a run whose teacher is another checkpoint (same path or not): a warning naming both
    other = teacher_ckpt(tmp_path, 'other_teacher.pth', seed=1)
    for teacher in (other, None):
        model = algorithm(teacher)
        runner = fake_runner(model, tmp_path)
        ClassMeansHook(file=path).before_train(runner)
        assert torch.equal(model.class_means.means, means)  # loaded all the same: a warning, not an error
        (warning, ) = runner.logger.warnings
        assert f'computed for teacher checkpoint {ckpt!r}' in warning and f'is {teacher!r}' in warning
        assert 'compute_class_means.py' in warning
    assert open(path, 'rb').read() == before


def test_wrong_shape_file_is_refused_and_nothing_changes(tmp_path):
    path, _ = means_file(tmp_path, num_classes=K + 1)
    before = open(path, 'rb').read()
    model = algorithm()
    with pytest.raises(ValueError, match=rf'\[{K + 1}, {D}\].*\[K, D\] = \[{K}, {D}\].*compute_class_means.py'):
        ClassMeansHook(file=path).before_train(fake_runner(model, tmp_path))
    assert not model.class_means.initialized and model.class_means.counts.sum() == 0
    assert open(path, 'rb').read() == before
    with pytest.raises(FileNotFoundError, match='compute_class_means.py'):
        ClassMeansHook(file=str(tmp_path / 'missing.pth'))


def test_classes_without_a_mean_are_reported(tmp_path):
    path, _ = means_file(tmp_path, classes=K - 2)
    runner = fake_runner(algorithm(), tmp_path)
    ClassMeansHook(file=path).before_train(runner)
    (warning, ) = runner.logger.warnings
    assert 'cover 3/5 classes (none for classes [3, 4])' in warning and 'left out of the losses' in warning
    runner = fake_runner(algorithm(), tmp_path)
    ClassMeansHook(file=path, missing_warn_ratio=0.4).before_train(runner)  # 2 of 5 missing is within 40%
    assert not runner.logger.warnings and any('cover 3/5 classes' in m for m in runner.logger.infos)
    with pytest.raises(ValueError, match='missing_warn_ratio'):
        ClassMeansHook(missing_warn_ratio=2)


@pytest.mark.parametrize('sampler', ['InfiniteSampler', 'DefaultSampler'])
def test_default_pass_is_one_epoch_over_all_ranks(tmp_path, monkeypatch, sampler):
    """Rank 0 of 2, 10 images, batch 2: ceil(10 / (2 * 2)) = 3 batches per rank, with either sampler (an
    InfiniteSampler's length is the whole dataset on every rank)."""
    import mmengine.dataset.sampler as samplers
    monkeypatch.setattr(samplers, 'get_dist_info', lambda: (0, 2))
    monkeypatch.setattr(class_means_hook, 'get_world_size', lambda: 2)
    monkeypatch.setattr(ClassMeans, 'all_reduce', lambda self: None)  # no process group here
    model = algorithm()
    batches = []
    collect = model.collect_class_features

    def counting(inputs, data_samples):
        batches.append([int(d.gt_label) for d in data_samples])
        return collect(inputs, data_samples)

    model.collect_class_features = counting
    runner = fake_runner(model, tmp_path, sampler=sampler)
    ClassMeansHook().before_train(runner)
    assert len(batches) == 3 and sum(batches, [])[:5] == [i % K for i in (0, 2, 4, 6, 8)]  # rank 0's share
    saved = torch.load(tmp_path / 'log' / 'class_means.pth', weights_only=True)
    assert saved['meta'] == dict(config='config.py', teacher_ckpt=None, teacher_sha256=None)


def test_pass_saves_the_teachers_identity(tmp_path):
    ckpt = teacher_ckpt(tmp_path, 'teacher.pth', seed=0)
    runner = fake_runner(algorithm(ckpt), tmp_path)
    ClassMeansHook().before_train(runner)
    meta = torch.load(tmp_path / 'log' / 'class_means.pth', weights_only=True)['meta']
    assert meta == dict(config='config.py', **checkpoint_identity(ckpt)) and len(meta['teacher_sha256']) == 64
    assert any('cover 5/5 classes' in m for m in runner.logger.infos)


def test_non_finite_teacher_features_stop_the_pass(tmp_path):
    model = algorithm()
    model.teacher.neck.register_forward_hook(lambda module, inputs, out: out * float('nan'))
    with pytest.raises(FloatingPointError, match='batch 1 of the class-means pass are not finite'):
        ClassMeansHook().before_train(fake_runner(model, tmp_path))
    assert not (tmp_path / 'log').exists()


def test_a_pass_that_meets_non_finite_features_leaves_the_models_means_and_files_as_they_were(tmp_path):
    """NaN teacher features in batch 3 of 5: a FloatingPointError naming the batch and where the features come
    from; the model's class means are still the (empty) ones of before the pass, not those of batches 1-2, and
    no file is written. The offline pass (tools/analysis/compute_class_means.py) leaves an earlier file too."""
    model = algorithm()
    calls = []

    def poison(module, inputs, out):
        calls.append(1)
        return out * float('nan') if len(calls) == 3 else out

    model.teacher.neck.register_forward_hook(poison)
    runner = fake_runner(model, tmp_path)
    with pytest.raises(FloatingPointError, match=r'features in batch 3 of the class-means pass are not finite '
                                                 r'\(128 NaN, 0 Inf of 128 values of the \[2, 64\] features from '
                                                 r'ClsDistill\.collect_class_features\).*Nothing was written'):
        ClassMeansHook().before_train(runner)
    assert not model.class_means.initialized and not model.class_means.counts.any()
    assert not (tmp_path / 'log').exists()

    earlier, means = means_file(tmp_path, name='earlier.pth')
    written = open(earlier, 'rb').read()
    model.class_means.load(earlier)
    calls.clear()
    with pytest.raises(FloatingPointError, match='batch 3 of the class-means pass'):
        class_means_hook.compute_class_means(model, runner.cfg.train_dataloader, None, runner)
    assert torch.equal(model.class_means.means, means)  # the model's means are those it had
    model.class_means.means[0, 0] = float('nan')  # even means gone bad by other means are not saved over it
    with pytest.raises(FloatingPointError, match='not finite'):
        model.class_means.save(earlier)
    assert open(earlier, 'rb').read() == written


def test_a_random_teacher_is_refused_before_the_pass(tmp_path):
    model = algorithm(allow_random_teacher=False)
    calls = []
    model.collect_class_features = lambda *args: calls.append(1)
    with pytest.raises(ValueError, match='teacher has no trained weights.*allow_random_teacher=True'):
        ClassMeansHook().before_train(fake_runner(model, tmp_path))
    assert not calls and not (tmp_path / 'log').exists()


def test_the_offline_pass_refuses_a_random_teacher_too(tmp_path):
    """tools/analysis/compute_class_means.py calls compute_class_means without the hook: it must not write means
    of a randomly initialised teacher either."""
    model = algorithm(allow_random_teacher=False)
    calls = []
    model.collect_class_features = lambda *args: calls.append(1)
    with pytest.raises(ValueError, match='teacher has no trained weights'):
        class_means_hook.compute_class_means(model, fake_runner(model, tmp_path).cfg.train_dataloader, None,
                                             fake_runner(model, tmp_path))
    assert not calls and not model.class_means.initialized
