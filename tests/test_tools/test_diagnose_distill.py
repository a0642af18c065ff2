"""tools/analysis/diagnose_distill.py (a command line over mmkd.analysis.diagnose): one deliberately broken config
per verdict, on tiny generated data.

The tool runs in-process (``main(argv)``, as ``python tools/analysis/diagnose_distill.py`` does) on the demo
detection configs (64x64 images, 1 batch of 2), a synthetic classification config and the shipped CIFAR-100 KD++
config (its 20-epoch KD warm-up); the teacher checkpoints are random weights saved the way mmengine's Runner saves
them (``meta``: training config text and class names).
"""
import importlib.util
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope

from mmkd.datasets.synthetic import CLS_CLASSES, generate_cifar_like, generate_coco_detection
from mmkd.structures import ClassMeans

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
_spec = importlib.util.spec_from_file_location('diagnose_distill',
                                               osp.join(REPO, 'tools/analysis/diagnose_distill.py'))
diag = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(diag)

DET_TEACHER = 'configs/demo/faster_rcnn_r50_teacher.py'
DET_ND = 'configs/demo/faster_rcnn_r50_r18_nd.py'
LINE = re.compile(r'^\[(OK|WARN|FAIL)\] (.+?) — (.*)$')


def save_teacher(config: str, path, classes=None, state=None) -> str:
    """Random weights of ``config``'s model, with the meta mmengine's Runner writes (config text, classes)."""
    cfg = Config.fromfile(osp.join(REPO, config))
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    classes = list(classes or cfg.metainfo['classes'])
    torch.save(dict(state_dict=state or model.state_dict(),
                    meta=dict(cfg=cfg.pretty_text, dataset_meta=dict(classes=classes))), path)
    return str(path)


def loader_options(data_root: str, batch_size: int = 2) -> list:
    opts = []
    for loader in ('train_dataloader', 'val_dataloader'):
        opts += [f'{loader}.dataset.data_root={data_root}', f'{loader}.num_workers=0',
                 f'{loader}.persistent_workers=False', f'{loader}.batch_size={batch_size}']
    return opts


@pytest.fixture(scope='module')
def det(tmp_path_factory):
    root = tmp_path_factory.mktemp('diag_det')
    classes = Config.fromfile(osp.join(REPO, DET_TEACHER)).metainfo['classes']
    data = generate_coco_detection(root / 'data', num_train=4, num_val=16, img_size=64, num_classes=len(classes),
                                   min_object_size=16)
    ckpt = save_teacher(DET_TEACHER, root / 'teacher.pth')
    return dict(root=root, classes=classes, ckpt=ckpt,
                opts=loader_options(data['data_root'] + '/') + [f'model.teacher_ckpt={ckpt}'])


def diagnose(capsys, config: str, options: list, *args: str):
    """Exit code and ``{what: (level, why)}`` of one diagnose_distill run."""
    rc = diag.main([osp.join(REPO, config), '--num-batches', '1', *args, '--cfg-options', *options])
    out = capsys.readouterr().out
    verdicts = {}
    for line in out.splitlines():
        m = LINE.match(line)
        if m:
            verdicts[m.group(2)] = (m.group(1), m.group(3))
    assert re.search(r'^\d+ OK, \d+ WARN, \d+ FAIL$', out, re.M), out
    return rc, verdicts


# -------------------------------------------------------------------------------------------- detection
def test_random_teacher_checkpoint_fails_accuracy_only(det, capsys):
    """The demo ND config with a teacher checkpoint of random weights: everything is in order except the
    teacher, which is at chance level (on the boxes of 16 validation images: those of 1 batch are too few to
    tell)."""
    rc, v = diagnose(capsys, DET_ND, det['opts'], '--num-batches', '8')
    assert rc == 1, v
    assert v['teacher weights'][0] == 'OK' and 'trained on the same' in v['teacher weights'][1]
    assert v['teacher accuracy'][0] == 'FAIL' and 'chance level' in v['teacher accuracy'][1]
    assert v['preprocessing'][0] == 'OK' and 'training config' in v['preprocessing'][1]
    assert v['class means'][0] in ('OK', 'WARN')  # a sample of 1 batch: unseen classes are only a warning
    assert v['loss loss_kd'][0] == 'OK' and v['loss loss_nd'][0] == 'OK'
    assert v['RoI correspondence'][0] == 'OK'
    assert [w for w, (level, _) in v.items() if level == 'FAIL'] == ['teacher accuracy']


def test_no_teacher_checkpoint(det, capsys):
    rc, v = diagnose(capsys, DET_ND, det['opts'] + ['model.teacher_ckpt=None'], '--only', 'weights')
    assert rc == 1 and v['teacher weights'][0] == 'FAIL' and 'no teacher_ckpt' in v['teacher weights'][1]


def test_teacher_of_other_classes(det, capsys, tmp_path):
    """A checkpoint trained on the same number of classes in another order, and one of another class count."""
    shuffled = save_teacher(DET_TEACHER, tmp_path / 'shuffled.pth', classes=det['classes'][::-1])
    rc, v = diagnose(capsys, DET_ND, det['opts'] + [f'model.teacher_ckpt={shuffled}'], '--only', 'weights')
    assert rc == 1 and v['teacher weights'][0] == 'FAIL' and 'trained on classes' in v['teacher weights'][1]
    state = torch.load(det['ckpt'], weights_only=False)['state_dict']
    state['roi_head.bbox_head.fc_cls.weight'] = torch.zeros(81, state['roi_head.bbox_head.fc_cls.weight'].shape[1])
    other = save_teacher(DET_TEACHER, tmp_path / 'coco80.pth', state=state)
    # the algorithm refuses it when built: that is the teacher-weights verdict, and the other checks still run
    rc, v = diagnose(capsys, DET_ND, det['opts'] + [f'model.teacher_ckpt={other}'], '--only', 'weights', 'accuracy')
    assert rc == 1 and 'build' not in v
    level, why = v['teacher weights']
    assert level == 'FAIL' and 'refuses teacher_ckpt' in why and 'fc_cls.weight' in why
    assert 'teacher_ckpt_strict=False' in v['teacher accuracy'][1]  # measured on the matching weights
    rc, v = diagnose(capsys, DET_ND, det['opts'] + [f'model.teacher_ckpt={other}', 'model.teacher_ckpt_strict=False'],
                     '--only', 'weights')
    assert rc == 1 and v['teacher weights'][0] == 'FAIL' and '1 of another shape' in v['teacher weights'][1]
    assert 'roi_head.bbox_head.fc_cls.weight: [81, ' in v['teacher weights'][1]


def test_teacher_checkpoint_the_algorithm_refuses(det, capsys, tmp_path):
    """A missing file, a NaN weight, a distillation checkpoint: the algorithm refuses each when it is built; the
    diagnosis reports its message as the teacher-weights FAIL and goes on with the other checks."""
    state = torch.load(det['ckpt'], weights_only=False)['state_dict']
    nan = dict(state)
    nan['backbone.conv1.weight'] = torch.full_like(state['backbone.conv1.weight'], float('nan'))
    distill = {f'teacher.{k}': v for k, v in state.items()}
    cases = [(str(tmp_path / 'absent.pth'), 'does not exist'),
             (save_teacher(DET_TEACHER, tmp_path / 'nan.pth', state=nan), 'NaN'),
             (save_teacher(DET_TEACHER, tmp_path / 'distill.pth', state=distill), 'distillation checkpoint')]
    for ckpt, expected in cases:
        rc, v = diagnose(capsys, DET_ND, det['opts'] + [f'model.teacher_ckpt={ckpt}'], '--only', 'weights',
                         'accuracy')
        level, why = v['teacher weights']
        assert rc == 1 and 'build' not in v and level == 'FAIL' and expected in why, (ckpt, why)
        assert 'refuses teacher_ckpt' in why and 'This teacher was built with' in v['teacher accuracy'][1]
    # a --checkpoint with the teacher does not make the config build
    rc, v = diagnose(capsys, DET_ND, det['opts'] + [f'model.teacher_ckpt={cases[0][0]}'], '--checkpoint',
                     det['ckpt'], '--only', 'weights')
    assert rc == 1 and v['teacher weights'][0] == 'FAIL' and 'does not exist' in v['teacher weights'][1]


def test_teacher_checkpoint_without_num_batches_tracked(det, capsys, tmp_path):
    """BatchNorm counters are not weights: the algorithm loads such a checkpoint, so the diagnosis accepts it."""
    state = torch.load(det['ckpt'], weights_only=False)['state_dict']
    assert any(k.endswith('num_batches_tracked') for k in state)
    stripped = {k: v for k, v in state.items() if not k.endswith('num_batches_tracked')}
    ckpt = save_teacher(DET_TEACHER, tmp_path / 'no_counters.pth', state=stripped)
    rc, v = diagnose(capsys, DET_ND, det['opts'] + [f'model.teacher_ckpt={ckpt}'], '--only', 'weights')
    assert rc == 0 and v['teacher weights'][0] == 'OK' and 'all ' in v['teacher weights'][1]
    rc, v = diagnose(capsys, DET_ND, det['opts'] + [f'model.teacher_ckpt={ckpt}', 'model.teacher_fuse_conv_bn=False'],
                     '--only', 'weights')
    assert rc == 0 and v['teacher weights'][0] == 'OK'


def test_non_finite_loss_gets_its_own_verdict(det, capsys, tmp_path):
    """A student whose classifier holds NaN: KD on its logits is not finite (its own FAIL line, instead of the
    algorithm's stop of the whole step), ND on the feature before the classifier still is."""
    cfg = Config.fromfile(osp.join(REPO, DET_ND))
    cfg.merge_from_dict(dict(model=dict(teacher_ckpt=det['ckpt'])))
    init_default_scope('mmdet')
    state = MODELS.build(cfg.model).state_dict()
    key = 'architecture.roi_head.bbox_head.fc_cls.weight'
    state[key] = torch.full_like(state[key], float('nan'))
    ckpt = tmp_path / 'nan_student.pth'
    torch.save(dict(state_dict=state, meta={}), ckpt)
    rc, v = diagnose(capsys, DET_ND, det['opts'], '--checkpoint', str(ckpt), '--only', 'weights', 'losses')
    assert rc == 1 and v['teacher weights'][0] == 'OK'
    assert v['loss loss_kd'][0] == 'FAIL' and 'not finite' in v['loss loss_kd'][1]
    assert 'loss loss_nd' in v and 'could not run' not in str(v)


def test_checkpoint_without_teacher_weights(det, capsys):
    """--checkpoint of a plain detector (no teacher.* weights) for a distillation config."""
    rc, v = diagnose(capsys, DET_ND, det['opts'], '--checkpoint', det['ckpt'], '--only', 'weights')
    assert rc == 1 and v['teacher weights'][0] == 'FAIL' and 'holds no teacher.* weights' in v['teacher weights'][1]


@pytest.mark.parametrize('option,expected', [
    ('model.architecture.data_preprocessor.bgr_to_rgb=False', 'channel swap'),
    ('model.architecture.data_preprocessor.mean=[0,0,0]', 'mean [0.0, 0.0, 0.0] (fed to it)')])
def test_mismatched_preprocessing(det, capsys, option, expected):
    """Fed as they are (teacher_preprocessing='ignore'), the student's inputs fail; converted for the teacher (the
    algorithms' default), they pass."""
    rc, v = diagnose(capsys, DET_ND, det['opts'] + [option, 'model.teacher_preprocessing=ignore'],
                     '--only', 'preprocessing')
    level, why = v['preprocessing']
    assert rc == 1 and level == 'FAIL' and expected in why
    assert '[declared teacher config]' in why and '[teacher training config]' in why
    rc, v = diagnose(capsys, DET_ND, det['opts'] + [option], '--only', 'preprocessing')
    level, why = v['preprocessing']
    assert rc == 0 and level == 'OK' and "the algorithm converts the batch to them" in why


def test_distillation_gradient_far_above_the_task_gradient(det, capsys):
    rc, v = diagnose(capsys, DET_ND, det['opts'] + ['model.distiller.distill_losses.loss_nd.loss_weight=10000'],
                     '--only', 'losses')
    assert rc == 1, v
    level, why = v['loss loss_nd']
    assert level == 'FAIL' and 'swamps the task loss' in why
    assert float(re.search(r'= (\S+)x the task loss', why).group(1)) > 100
    assert v['loss loss_kd'][0] == 'OK'


def test_class_means_file_with_an_unseen_class(det, capsys, tmp_path):
    cfg = Config.fromfile(osp.join(REPO, DET_TEACHER))
    k, width = len(det['classes']) + 1, cfg.model.roi_head.bbox_head.fc_out_channels
    means = ClassMeans(num_classes=k, feat_dim=width)
    labels = torch.tensor([c for c in range(k) if c != 1])  # class 1 never seen
    means.update(torch.rand(len(labels), width) + 0.1, labels)
    means.save(str(tmp_path / 'means.pth'))
    rc, v = diagnose(capsys, DET_ND, det['opts'] + [f'custom_hooks.0.file={tmp_path / "means.pth"}'],
                     '--only', 'class_means')
    level, why = v['class means']
    assert rc == 1 and level == 'FAIL' and f"['{det['classes'][1]}']" in why and 'means.pth' in why


def test_teacher_rois_of_its_own(det, capsys, tmp_path):
    """mmrazor's SingleTeacherDistill runs the teacher's own RPN and RoI sampling: same RoI count, other boxes."""
    config = tmp_path / 'single_teacher_kd.py'
    config.write_text(
        f"_base_ = '{osp.join(REPO, 'configs/demo/faster_rcnn_r50_r18_kd.py')}'\n"
        "_logits = dict(roi_logits=dict(type='ModuleOutputs', source='roi_head.bbox_head.fc_cls'))\n"
        "model = dict(type='SingleTeacherDistill', distiller=dict(student_recorders=_logits, "
        "teacher_recorders=_logits))\n")
    rc, v = diagnose(capsys, str(config), det['opts'], '--only', 'losses')
    level, why = v['RoI correspondence']
    assert rc == 1 and level == 'FAIL' and 'RoIs of its own' in why and 'mmkd.RoIDistill' in why
    assert v['loss loss_kd'][0] == 'OK'  # the loss itself computes without complaint: the bug is silent


def test_student_alone_config_has_nothing_to_fail(det, capsys):
    rc, v = diagnose(capsys, 'configs/demo/faster_rcnn_r18_baseline.py', det['opts'][:-1])
    assert rc == 0 and all(level == 'OK' and why.startswith('n/a') for level, why in v.values())


# -------------------------------------------------------------------------------------------- classification
def test_classification_config(capsys, tmp_path):
    """KD++ resnet20 -> resnet8: top-1 of the teacher on validation images, the ND and KD gradients, class means
    from a sample; a student normalised differently from the teacher's training fails preprocessing."""
    data = generate_cifar_like(tmp_path / 'cifar', num_train=16, num_test=16, num_classes=10)
    ckpt = save_teacher('configs/cls/synthetic/res20_teacher_synthetic.py', tmp_path / 'teacher.pth',
                        classes=CLS_CLASSES)
    opts = loader_options(data['data_root'], batch_size=16) + [f'model.teacher_ckpt={ckpt}']
    config = 'configs/cls/synthetic/kdpp_res20_res8_synthetic.py'
    rc, v = diagnose(capsys, config, opts)
    assert v['teacher weights'][0] == 'OK'
    assert 'of 16 validation images' in v['teacher accuracy'][1]
    assert v['preprocessing'][0] == 'OK'
    assert v['loss loss_kd'][0] in ('OK', 'WARN') and v['loss loss_nd'][0] in ('OK', 'WARN')
    assert 'class means' in v and 'RoI correspondence' not in v
    rc, v = diagnose(capsys, config, opts + ['model.architecture.data_preprocessor.std=[1,1,1]',
                                             'model.teacher_preprocessing=ignore'], '--only', 'preprocessing')
    assert rc == 1 and v['preprocessing'][0] == 'FAIL' and 'std [1.0, 1.0, 1.0]' in v['preprocessing'][1]


# -------------------------------------------------------------------------------------------- warm-up, seed
@pytest.fixture(scope='module')
def cifar(tmp_path_factory):
    root = tmp_path_factory.mktemp('diag_cifar')
    data = generate_cifar_like(root / 'cifar', num_train=16, num_test=16, num_classes=10)
    return dict(root=root, data_root=data['data_root'])


def test_warmup_loss_is_measured_at_full_weight(cifar, capsys):
    """The shipped CIFAR-100 KD++ config warms KD up over 20 epochs (1/20 at step 0): its gradient ratio is the
    one without the warm-up, and the line reports the factor."""
    config = 'configs/cls/cifar100/kdpp_res56_res20.py'
    assert Config.fromfile(osp.join(REPO, config)).model.loss_warmup == dict(loss_kd=20)
    ckpt = save_teacher('configs/cls/cifar100/res56_teacher.py', cifar['root'] / 'res56.pth', classes=CLS_CLASSES)
    opts = loader_options(cifar['data_root'], batch_size=4) + [f'model.teacher_ckpt={ckpt}']
    ratios = {}
    for warmup in ([], ['model.loss_warmup=None']):
        rc, v = diagnose(capsys, config, opts + warmup, '--only', 'losses')
        ratios[bool(warmup)] = float(re.search(r'= (\S+)x the task loss', v['loss loss_kd'][1]).group(1))
        assert ('scales it by 0.05' in v['loss loss_kd'][1]) == (not warmup)
        assert 'scales it by' not in v['loss loss_nd'][1]  # ND has no warm-up
    assert ratios[False] == pytest.approx(ratios[True], rel=2e-3)


def test_seed_reaches_the_dataloaders(cifar, capsys, monkeypatch):
    """Same --seed, same batches (order and augmentation); another seed, other batches."""
    ckpt = save_teacher('configs/cls/synthetic/res20_teacher_synthetic.py', cifar['root'] / 'res20.pth',
                        classes=CLS_CLASSES)
    opts = loader_options(cifar['data_root'], batch_size=4) + [f'model.teacher_ckpt={ckpt}']
    runs = []

    class Recorded(diag.Diagnosis):
        def run(self):
            runs.append(self)
            return super().run()

    monkeypatch.setattr(diag, 'Diagnosis', Recorded)
    for seed in (0, 0, 1):
        diagnose(capsys, 'configs/cls/synthetic/kdpp_res20_res8_synthetic.py', opts, '--only', 'losses',
                 '--seed', str(seed))
    seen = [[b for b in run.batches_seen if b[0] == 'train'] for run in runs]
    assert len(seen[0]) == 1 and seen[0] == seen[1]
    assert seen[0] != seen[2]
