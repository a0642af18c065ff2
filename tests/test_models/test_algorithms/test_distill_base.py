"""What both distillation algorithms inherit from ``TeacherStudentDistill``, on tiny classifiers: a teacher
checkpoint that must fit the teacher, a stop at non-finite teacher outputs or losses, checkpoints that load
whatever ``teacher_fuse_conv_bn`` they were written with, and teacher recorders the BatchNorm folding leaves
intact."""
import uuid

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.logging import MessageHub
from mmengine.registry import DefaultScope
from mmengine.runner import Runner
from mmengine.runner.checkpoint import load_state_dict
from mmengine.structures import BaseDataElement
from torch.nn.modules.batchnorm import _BatchNorm

import mmkd  # noqa: F401
from mmkd.models.utils import trace_conv_bn_pairs
from mmkd.registry import MODELS
from mmkd.testing import randomise_batchnorms

K = 5


@pytest.fixture(autouse=True)
def mmkd_scope():
    with DefaultScope.overwrite_default_scope('mmkd'):
        yield


def classifier(arch: str = 'resnet14') -> dict:
    return dict(type='ImageClassifier', backbone=dict(type='CIFARResNet', arch=arch),
                head=dict(type='LinearClsHead', num_classes=K, in_channels=64))


def algorithm(teacher_recorders=None, **kwargs):
    """ClsDistill resnet14 -> resnet8 with KD on the logits and ND on the features."""
    cfg = dict(
        type='ClsDistill', architecture=classifier('resnet8'), teacher=classifier('resnet14'),
        class_means=dict(num_classes=K, feat_dim=64),
        distiller=dict(
            type='ConfigurableDistiller', teacher_recorders=teacher_recorders or {},
            distill_losses=dict(loss_kd=dict(type='KLDivergence', tau=4), loss_nd=dict(type='NDLoss')),
            loss_forward_mappings=dict(
                loss_kd=dict(preds_S=dict(recorder='logits', from_student=True),
                             preds_T=dict(recorder='logits', from_student=False)),
                loss_nd=dict(student_feat=dict(recorder='feat', from_student=True),
                             teacher_feat=dict(recorder='feat', from_student=False),
                             labels=dict(recorder='labels', from_student=True, data_idx=1)))))
    cfg.update(kwargs)
    cfg.setdefault('allow_random_teacher', not cfg.get('teacher_ckpt'))  # most tests need no trained teacher
    model = MODELS.build(cfg)
    model.class_means.update(torch.rand(2 * K, 64), torch.arange(K).repeat(2))
    return model


def batch(n: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 32, 32, generator=g), [BaseDataElement(gt_label=torch.tensor([i % K])) for i in range(n)]


def teacher_ckpt(tmp_path, name: str = 'teacher.pth', **extra) -> str:
    """A resnet14 classifier checkpoint (mmengine layout) with BatchNorms far from their initial values."""
    teacher = randomise_batchnorms(MODELS.build(classifier('resnet14')))
    path = str(tmp_path / name)
    torch.save(dict(state_dict=teacher.state_dict(), meta=dict(), **extra), path)
    return path


# ---------------------------------------------------------------------------------------------- teacher_ckpt
def test_teacher_ckpt_that_does_not_fit_is_refused_before_training(tmp_path):
    student_ckpt = str(tmp_path / 'student.pth')  # the classic mix-up: the student's checkpoint as the teacher's
    torch.save(dict(state_dict=MODELS.build(classifier('resnet8')).state_dict()), student_ckpt)
    with pytest.raises(ValueError) as err:
        algorithm(teacher_ckpt=student_ckpt)
    msg = str(err.value)
    teacher_weights = sum(1 for k in MODELS.build(classifier('resnet14')).state_dict()
                          if not k.endswith('num_batches_tracked'))
    lost = int(msg.split(' of the ')[0].rsplit(' ', 1)[-1])
    assert f'of the {teacher_weights} weights of the teacher' in msg and 0 < lost < teacher_weights
    assert 'missing (backbone.' in msg and 'teacher_ckpt_strict=False' in msg and student_ckpt in msg

    # a distillation checkpoint (architecture./teacher. keys) is named as such
    distill_ckpt = str(tmp_path / 'distill.pth')
    torch.save(dict(state_dict={f'teacher.{k}': v for k, v in MODELS.build(classifier()).state_dict().items()}),
               distill_ckpt)
    with pytest.raises(ValueError, match='distillation checkpoint.*convert_kd_ckpt_to_student'):
        algorithm(teacher_ckpt=distill_ckpt)

    # explicit opt-in: the matching weights are loaded, the others stay as initialised
    model = algorithm(teacher_ckpt=student_ckpt, teacher_ckpt_strict=False, teacher_fuse_conv_bn=False)
    student_state = torch.load(student_ckpt, weights_only=True)['state_dict']
    assert torch.equal(model.teacher.state_dict()['backbone.stem.0.weight'], student_state['backbone.stem.0.weight'])


def test_fitting_teacher_ckpt_loads_fully(tmp_path):
    path = teacher_ckpt(tmp_path)
    state = torch.load(path, weights_only=True)['state_dict']
    wrapped = str(tmp_path / 'ddp.pth')  # written from a DDP-wrapped model: keys start with 'module.'
    torch.save(dict(state_dict={f'module.{k}': v for k, v in state.items()}), wrapped)
    for ckpt in (path, wrapped):
        model = algorithm(teacher_ckpt=ckpt, teacher_fuse_conv_bn=False)
        for k, v in model.teacher.state_dict().items():
            assert torch.equal(v, state[k]), k
        assert model.teacher_ckpt == ckpt


# ---------------------------------------------------------------------------------------------- non-finite
def test_nan_in_teacher_weights_stops_the_step_naming_the_tensor():
    model = algorithm()
    model.train()
    with torch.no_grad():
        model.teacher.head.fc.weight[0, 0] = float('nan')  # logits go NaN, features stay finite
    with pytest.raises(FloatingPointError) as err:
        model.loss(*batch())
    msg = str(err.value)
    assert "teacher record 'logits' (head.fc; read by loss_kd)" in msg and 'NaN' in msg
    assert "'feat'" not in msg  # the finite teacher feature is not blamed


def test_non_finite_distill_loss_is_named(monkeypatch):
    model = algorithm()
    model.train()
    nd = model.distiller.distill_losses['loss_nd']
    monkeypatch.setattr(nd, 'forward', lambda *args, **kwargs: torch.tensor(float('inf')))
    with pytest.raises(FloatingPointError, match=r'non-finite distillation loss.*loss_nd = \[inf\]'):
        model.loss(*batch())
    # every other step with finite_check_interval=2; never with 0
    model.finite_check_interval, model._loss_calls = 2, 0
    with pytest.raises(FloatingPointError):
        model.loss(*batch())
    assert torch.isinf(model.loss(*batch())['distill.loss_nd'])
    model.finite_check_interval = 0
    assert torch.isinf(model.loss(*batch())['distill.loss_nd'])
    with pytest.raises(ValueError, match='finite_check_interval'):
        algorithm(finite_check_interval=-1)


class TinyData(torch.utils.data.Dataset):

    def __len__(self):
        return 8

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return dict(inputs=torch.randn(3, 32, 32, generator=g),
                    data_samples=BaseDataElement(gt_label=torch.tensor([i % K])))


def test_teacher_ckpt_holding_a_nan_is_refused_at_build(tmp_path):
    path = teacher_ckpt(tmp_path)
    ckpt = torch.load(path, weights_only=True)
    ckpt['state_dict']['backbone.stem.0.weight'][0, 0, 0, 0] = float('nan')
    torch.save(ckpt, path)
    for fuse in (True, False):
        with pytest.raises(ValueError, match=r'holds NaN/Inf values in 1 of the teacher\'s tensors '
                                             r'\(backbone\.stem\.0\.weight\)'):
            algorithm(teacher_ckpt=path, teacher_fuse_conv_bn=fuse)


def test_teacher_whose_features_overflow_is_refused_at_build(tmp_path):
    path = teacher_ckpt(tmp_path)
    ckpt = torch.load(path, weights_only=True)
    ckpt['state_dict']['backbone.stem.0.weight'] *= 1e38  # finite weights, infinite activations
    torch.save(ckpt, path)
    with pytest.raises(FloatingPointError, match='teacher\'s features on a random 64x64 image are not finite'):
        algorithm(teacher_ckpt=path)


def test_nan_teacher_stops_training_at_step_one_before_any_checkpoint(tmp_path):
    """A teacher going non-finite after the build checks (an fp16 overflow does): the first step stops."""
    model = algorithm(teacher_ckpt=teacher_ckpt(tmp_path))
    with torch.no_grad():
        model.teacher.backbone.stem[0].weight[0, 0, 0, 0] = float('nan')
    work_dir = tmp_path / 'work_dir'
    runner = Runner(
        model=model, work_dir=str(work_dir), experiment_name=f'nan_{uuid.uuid4().hex}', default_scope='mmkd',
        train_dataloader=dict(dataset=TinyData(), sampler=dict(type='InfiniteSampler', shuffle=False), batch_size=4,
                              num_workers=0, collate_fn=dict(type='default_collate')),
        train_cfg=dict(by_epoch=False, max_iters=3), optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1, by_epoch=False)),
        log_processor=dict(by_epoch=False))
    with pytest.raises(FloatingPointError, match=r"at training iteration 1: teacher record 'logits' \(head\.fc; "
                                                 r"read by loss_kd\).*teacher record 'feat' \(neck; read by loss_nd\)"):
        runner.train()
    assert not list(work_dir.rglob('*.pth'))


# ------------------------------------------------------------------------------------ teacher_fuse_conv_bn
def teacher_features(model, x):
    model.eval()
    with torch.no_grad():
        return model.teacher.extract_feat(model.teacher_inputs(x))


def test_checkpoints_load_whatever_teacher_fuse_conv_bn_wrote_them(tmp_path):
    x, _ = batch()
    torch.manual_seed(1)
    unfused = algorithm(teacher_ckpt=teacher_ckpt(tmp_path), teacher_fuse_conv_bn=False)
    expected = teacher_features(unfused, x)
    # written unfolded, loaded (as by --resume or tools/test.py: mmengine, strict=False) into a folded teacher:
    # folded on load
    torch.manual_seed(2)
    fused = algorithm()
    assert not any(isinstance(m, _BatchNorm) for m in fused.teacher.modules())
    load_state_dict(fused, unfused.state_dict())
    torch.testing.assert_close(teacher_features(fused, x), expected, rtol=1e-5, atol=1e-5)
    assert set(fused.state_dict()) == set(algorithm().state_dict())  # still the folded layout
    # written folded, loaded into an algorithm that keeps the BatchNorms: refused, nothing silently wrong
    torch.manual_seed(3)
    other = algorithm(teacher_fuse_conv_bn=False)
    with pytest.raises(ValueError, match='teacher_fuse_conv_bn=True'):
        load_state_dict(other, fused.state_dict())
    with pytest.raises(ValueError, match='teacher_fuse_conv_bn=True'):
        other.load_state_dict(fused.state_dict())
    # same setting: loads as before
    again = algorithm()
    again.load_state_dict(fused.state_dict())
    torch.testing.assert_close(teacher_features(again, x), expected, rtol=1e-5, atol=1e-5)
    # a plain student checkpoint (no teacher entries) is not mistaken for either layout
    load_state_dict(other, {f'architecture.{k}': v for k, v in fused.student.state_dict().items()})


# -------------------------------------------------------------------------------- recorders on the teacher
def test_teacher_recorders_on_conv_and_batchnorm_see_the_unfolded_tensors(tmp_path):
    x, _ = batch()
    plain = randomise_batchnorms(MODELS.build(classifier('resnet14')))
    pairs, _ = trace_conv_bn_pairs(plain, lambda: plain.extract_feat(x[:1]))
    conv, bn = pairs[len(pairs) // 2]
    recorders = dict(conv_out=dict(type='ModuleOutputs', source=conv), bn_in=dict(type='ModuleInputs', source=bn),
                     bn_out=dict(type='ModuleOutputs', source=bn))
    ckpt = teacher_ckpt(tmp_path)
    records = {}
    for fuse in (False, True):
        model = algorithm(teacher_recorders=recorders, teacher_ckpt=ckpt, teacher_fuse_conv_bn=fuse)
        named = dict(model.teacher.named_modules())
        if fuse:  # the recorded pair stays, every other pair is folded
            assert isinstance(named[bn], _BatchNorm) and named[conv].bias is None
            assert sum(isinstance(m, _BatchNorm) for m in model.teacher.modules()) == 1
        with model.distiller.teacher_recorders:
            teacher_features(model, x)
        records[fuse] = {name: model.distiller.get_record(name, False, data_idx=0 if name == 'bn_in' else None)
                         for name in recorders}
    for name in recorders:
        torch.testing.assert_close(records[True][name], records[False][name], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(records[True]['conv_out'], records[True]['bn_out'])  # pre- vs post-BatchNorm


# ------------------------------------------------------------------------------------------ random teacher
def student_only_state(model) -> dict:
    return {k: v for k, v in model.state_dict().items() if k.startswith('architecture.')}


def test_a_teacher_without_trained_weights_is_refused_at_the_first_training_step(tmp_path):
    model = algorithm(allow_random_teacher=False)  # no teacher_ckpt, nothing loaded
    model.train()
    with pytest.raises(ValueError, match=r"teacher has no trained weights.*load_from / --resume.*`teacher_ckpt`"
                                         r".*allow_random_teacher=True"):
        model.loss(*batch())
    # a checkpoint without teacher entries (a student's) does not give it weights
    load_state_dict(model, student_only_state(algorithm()))
    with pytest.raises(ValueError, match='teacher has no trained weights'):
        model.loss(*batch())
    # a distillation checkpoint (what load_from / --resume load) does
    load_state_dict(model, algorithm(teacher_ckpt=teacher_ckpt(tmp_path)).state_dict())
    assert 'distill.loss_kd' in model.loss(*batch())
    # the explicit opt-in, and a teacher_ckpt: no question asked
    for kwargs in (dict(allow_random_teacher=True), dict(teacher_ckpt=teacher_ckpt(tmp_path))):
        assert 'distill.loss_kd' in algorithm(**kwargs).train().loss(*batch())
    # evaluation and inference never ask
    model = algorithm(allow_random_teacher=False).eval()
    model(batch()[0], mode='tensor')


def tiny_runner(model, work_dir, *, max_iters=3, optim_wrapper=None, hooks=(), batch_size=4, **kwargs) -> Runner:
    return Runner(
        model=model, work_dir=str(work_dir), experiment_name=f'run_{uuid.uuid4().hex}', default_scope='mmkd',
        train_dataloader=dict(dataset=TinyData(), sampler=dict(type='InfiniteSampler', shuffle=False),
                              batch_size=batch_size,
                              num_workers=0, collate_fn=dict(type='default_collate')),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        optim_wrapper=optim_wrapper or dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-3)),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1, by_epoch=False)),
        custom_hooks=list(hooks), log_processor=dict(by_epoch=False), **kwargs)


def test_load_from_a_distillation_checkpoint_gives_the_teacher_its_weights(tmp_path):
    distill_ckpt = str(tmp_path / 'distill.pth')
    torch.save(dict(state_dict=algorithm(teacher_ckpt=teacher_ckpt(tmp_path)).state_dict(), meta=dict()), distill_ckpt)
    model = algorithm(allow_random_teacher=False)
    tiny_runner(model, tmp_path / 'resumed', max_iters=1, load_from=distill_ckpt).train()
    work_dir = tmp_path / 'random'
    with pytest.raises(ValueError, match='teacher has no trained weights'):
        tiny_runner(algorithm(allow_random_teacher=False), work_dir, max_iters=1).train()
    assert not list(work_dir.rglob('*.pth'))


# ------------------------------------------------------------------------------------------ mixed precision
class PoisonTeacher(Hook):
    """During the given iterations (0-based) a weight of the teacher's first convolution is NaN (its features
    and logits, and ND's EMA update, go NaN); records, per iteration, whether the student's weights and the
    class means changed."""

    def __init__(self, iters, ranks=None):
        self.iters, self.ranks, self.changed, self.means_changed = set(iters), ranks, {}, {}

    def _model(self, runner):
        return runner.model.module if hasattr(runner.model, 'module') else runner.model

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        model = self._model(runner)
        self.before = [p.detach().clone() for p in model.student.parameters()]
        self.means = model.class_means.means.clone()
        if runner.iter in self.iters and (self.ranks is None or runner.rank in self.ranks):
            self.poison(model)

    def poison(self, model):
        self.weight = model.teacher.backbone.stem[0].weight
        self.saved = self.weight.detach().clone()
        with torch.no_grad():
            self.weight[0, 0, 0, 0] = float('nan')

    def cure(self, model):
        with torch.no_grad():
            self.weight.copy_(self.saved)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        model = self._model(runner)
        if runner.iter in self.iters and (self.ranks is None or runner.rank in self.ranks):
            self.cure(model)
        self.changed[runner.iter] = any(not torch.equal(a, b) for a, b in zip(self.before, model.student.parameters()))
        self.means_changed[runner.iter] = not torch.equal(self.means, model.class_means.means)


class PoisonOutput(PoisonTeacher):
    """As :class:`PoisonTeacher`, the teacher's weights intact: during the given iterations a forward hook on the
    teacher's ``module`` replaces its output by ``change(output)`` (``prepend``: before the recorders see it)."""

    def __init__(self, iters, module, change, prepend=False):
        super().__init__(iters)
        self.module, self.change, self.prepend = module, change, prepend

    def poison(self, model):
        self.handle = model.teacher.get_submodule(self.module).register_forward_hook(
            lambda module, inputs, output: self.change(output), prepend=self.prepend)

    def cure(self, model):
        self.handle.remove()


def ema_algorithm(**kwargs):
    return algorithm(class_means=dict(num_classes=K, feat_dim=64, momentum=0.5), **kwargs)


def test_mixed_precision_skips_a_non_finite_step_like_the_loss_scaler(tmp_path):
    """Under CPUAmpOptimWrapper (bfloat16 autocast) a step with NaN teacher outputs makes no update at all (SGD
    with momentum and weight decay would move the weights even with zero gradients), leaves the EMA class means
    as they were, is counted and logged; the next finite step updates again and resets the count in a row."""
    poison = PoisonTeacher(iters={1})
    model = ema_algorithm()
    tiny_runner(model, tmp_path, max_iters=4, optim_wrapper=dict(
        type='mmkd.CPUAmpOptimWrapper', optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-3)),
        hooks=[poison]).train()
    assert poison.changed == {0: True, 1: False, 2: True, 3: True}
    assert poison.means_changed == {0: True, 1: False, 2: True, 3: True}
    assert model.nonfinite_skipped_steps == 1 and model._nonfinite_in_a_row == 0
    assert MessageHub.get_current_instance().get_info('nonfinite_skipped_steps') == 1
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert torch.isfinite(model.class_means.means).all()
    assert {p.name for p in tmp_path.glob('iter_*.pth')} == {f'iter_{i}.pth' for i in range(1, 5)}


def test_mixed_precision_stops_after_amp_stop_after_nonfinite_steps_in_a_row(tmp_path):
    poison = PoisonTeacher(iters={1, 2, 3})
    with pytest.raises(FloatingPointError, match=r"at training iteration 3: teacher record 'logits'.*2 checked "
                                                 r"steps in a row.*amp_stop_after_nonfinite=2.*no checkpoint of it"):
        tiny_runner(ema_algorithm(amp_stop_after_nonfinite=2), tmp_path, max_iters=5, hooks=[poison],
                    optim_wrapper=dict(type='mmkd.CPUAmpOptimWrapper', optimizer=dict(type='SGD', lr=0.1))).train()
    assert poison.changed == {0: True, 1: False}  # iteration 3 (index 2) stopped before after_train_iter
    assert {p.name for p in tmp_path.glob('iter_*.pth')} == {'iter_1.pth', 'iter_2.pth'}
    with pytest.raises(ValueError, match='amp_stop_after_nonfinite'):
        algorithm(amp_stop_after_nonfinite=0)


def test_float32_stops_at_the_first_non_finite_step_without_an_update(tmp_path):
    poison = PoisonTeacher(iters={1})
    model = ema_algorithm(amp_stop_after_nonfinite=5)  # applies to mixed precision only
    with pytest.raises(FloatingPointError, match='at training iteration 2: teacher record'):
        tiny_runner(model, tmp_path, max_iters=3, hooks=[poison]).train()
    assert poison.changed == {0: True} and model.nonfinite_skipped_steps == 0
    assert {p.name for p in tmp_path.glob('iter_*.pth')} == {'iter_1.pth'}


# ------------------------------------------------------------------- a non-finite teacher and the class means
def nd_algorithm(**kwargs):
    """ClsDistill resnet14 -> resnet8 with ND only (its value and gradient read the class means and only the norm
    of the teacher feature), EMA class means."""
    cfg = dict(
        type='ClsDistill', architecture=classifier('resnet8'), teacher=classifier('resnet14'),
        class_means=dict(num_classes=K, feat_dim=64, momentum=0.5), allow_random_teacher=True,
        distiller=dict(
            type='ConfigurableDistiller', distill_losses=dict(loss_nd=dict(type='NDLoss')),
            loss_forward_mappings=dict(loss_nd=dict(student_feat=dict(recorder='feat', from_student=True),
                                                    teacher_feat=dict(recorder='feat', from_student=False),
                                                    labels=dict(recorder='labels', from_student=True,
                                                                data_idx=1)))))
    cfg.update(kwargs)
    model = MODELS.build(cfg)
    model.class_means.update(torch.rand(2 * K, 64), torch.arange(K).repeat(2))
    return model


def nan(output):
    return output * float('nan')


def test_a_nan_teacher_batch_never_reaches_the_ema_class_means_float32():
    """The teacher features of the EMA update are NaN (a hook after the recorder: the ND loss reads finite ones,
    so the student's gradients stay finite) and the batch holds every class: the step stops with a
    FloatingPointError naming them, before the means changed (they used to turn NaN, all of them, and NDLoss then
    refused them as 'no valid class yet', a wrong diagnosis)."""
    model = nd_algorithm().train()
    means = {k: v.clone() for k, v in model.class_means.state_dict().items()}
    handle = model.teacher.neck.register_forward_hook(lambda module, inputs, output: nan(output))
    x, samples = batch(n=K)  # one image of every class
    with pytest.raises(FloatingPointError, match=r'non-finite teacher outputs .*: the teacher features of the EMA '
                                                 r'class-means update: 320 NaN'):
        model.loss(x, samples)
    for k, v in model.class_means.state_dict().items():
        assert torch.equal(v, means[k]), k
    handle.remove()
    model.loss(x, samples)  # a clean batch: the means move again
    assert not torch.equal(model.class_means.means, means['means'])
    assert torch.isfinite(model.class_means.means).all()


def test_a_nan_teacher_batch_is_skipped_under_mixed_precision_and_the_means_kept(tmp_path):
    poison = PoisonOutput(iters={1}, module='neck', change=nan)
    model = nd_algorithm()
    tiny_runner(model, tmp_path, max_iters=3, batch_size=K, hooks=[poison], optim_wrapper=dict(
        type='mmkd.CPUAmpOptimWrapper', optimizer=dict(type='SGD', lr=0.1, momentum=0.9))).train()
    assert poison.changed == {0: True, 1: False, 2: True}
    assert poison.means_changed == {0: True, 1: False, 2: True}
    assert model.nonfinite_skipped_steps == 1 and torch.isfinite(model.class_means.means).all()


def test_the_teacher_verdict_before_the_update_covers_every_teacher_tensor_read():
    """The logits (read by KD) are NaN, the features of the EMA update finite: the means are kept too."""
    model = ema_algorithm().train()
    means = model.class_means.means.clone()
    model.teacher.head.fc.register_forward_hook(lambda module, inputs, output: nan(output), prepend=True)
    with pytest.raises(FloatingPointError, match=r"teacher record 'logits' \(head\.fc; read by loss_kd\)"):
        model.loss(*batch(n=K))
    assert torch.equal(model.class_means.means, means)


def overflow(maps):
    """The teacher's activations overflowing, as in float16: the backbone's (post-ReLU) maps scaled past the
    largest float, so that the features (their averages) hold +Inf."""
    return tuple(m * 1e38 for m in maps)


def test_the_mixed_precision_skip_is_what_stops_a_teacher_overflow_that_the_gradients_do_not_show(
        tmp_path, monkeypatch):
    """A teacher overflowing to +Inf: ND's value and gradient stay finite (the teacher feature only enters as an
    infinite norm in a denominator: the sample's loss is 1, its gradient 0), so the step's gradients are finite
    and only the NaN gradient that the verdict adds (``_NonFiniteGrad``) makes the mixed-precision wrapper skip
    the update."""
    from mmkd.models.algorithms import base
    model = nd_algorithm(class_means=dict(num_classes=K, feat_dim=64))  # exact means, filled: no update here
    model.train()
    x, samples = batch(n=K)
    handle = model.teacher.backbone.register_forward_hook(lambda module, inputs, output: overflow(output))
    # the premise: without the added NaN gradient, everything is finite but the teacher's features
    monkeypatch.setattr(base._NonFiniteGrad, 'apply', lambda param: param.new_zeros(()))
    with torch.autocast('cpu', dtype=torch.bfloat16):
        losses = model.loss(x, samples)
    assert torch.isinf(model.distiller.get_record('feat', False)).any()
    assert all(torch.isfinite(v) for v in losses.values())
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.student.parameters() if p.grad is not None)
    assert model.nonfinite_skipped_steps == 1
    monkeypatch.undo()
    handle.remove()

    poison = PoisonOutput(iters={1}, module='backbone', change=overflow)
    model = nd_algorithm(class_means=dict(num_classes=K, feat_dim=64))
    tiny_runner(model, tmp_path, max_iters=3, batch_size=K, hooks=[poison], optim_wrapper=dict(
        type='mmkd.CPUAmpOptimWrapper', optimizer=dict(type='SGD', lr=0.1))).train()
    assert poison.changed == {0: True, 1: False, 2: True} and model.nonfinite_skipped_steps == 1


def test_autocast_enabled_swallows_no_type_error(monkeypatch):
    """torch >= 2.4 takes the device type (mmkd needs 2.6): a TypeError is a real error and propagates; a device
    type this torch build does not know (RuntimeError) is skipped."""
    from mmkd.models.algorithms.base import _autocast_enabled
    assert not _autocast_enabled()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert _autocast_enabled()

    def old_signature(*args):
        if args:
            raise TypeError('is_autocast_enabled() takes 0 positional arguments but 1 was given')
        return False

    monkeypatch.setattr(torch, 'is_autocast_enabled', old_signature)
    with pytest.raises(TypeError):
        _autocast_enabled()

    def cpu_only(device):
        if device != 'cpu':
            raise RuntimeError(f'Expected one of cpu, cuda, xpu device type at start of device string: {device}')
        return True

    monkeypatch.setattr(torch, 'is_autocast_enabled', cpu_only)
    assert _autocast_enabled()
    monkeypatch.setattr(torch, 'is_autocast_enabled', lambda device: (_ for _ in ()).throw(RuntimeError('boom')))
    with pytest.raises(RuntimeError, match='boom'):
        _autocast_enabled()
