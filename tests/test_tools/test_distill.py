"""``tools/distill.py`` (over ``mmkd.apis.distill_config``): the config it writes for a teacher / student pair and a
method, its dry run (the model builds, the teacher checkpoint loads, nothing is downloaded), every refusal (before
anything is built), ``--method list``, ``tools/dist_distill.sh``, and a 2-iteration training run from the command.

Most runs are in-process (``main(argv)``, as ``python tools/distill.py`` runs it); the training run is a real
subprocess on the tiny generated COCO set of ``conftest.py``.
"""
import importlib.util
import os
import os.path as osp
import stat
import subprocess

import mmengine.runner.checkpoint
import pytest
import torch
from mmengine.config import Config
from mmengine.hub import get_model
from mmengine.registry import MODELS, init_default_scope

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
_spec = importlib.util.spec_from_file_location('distill_tool', osp.join(REPO, 'tools/distill.py'))
distill = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(distill)

R101 = 'mmdet::faster_rcnn/faster-rcnn_r101_fpn_1x_coco.py'
R50 = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'
DEMO_TEACHER = osp.join(REPO, 'configs/demo/faster_rcnn_r50_teacher.py')
DEMO_STUDENT = osp.join(REPO, 'configs/demo/faster_rcnn_r18_baseline.py')
DEMO_GFL_TEACHER = osp.join(REPO, 'configs/demo/gfl_r50_teacher.py')
DEMO_GFL_STUDENT = osp.join(REPO, 'configs/demo/gfl_r18_baseline.py')
RETINANET = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'


@pytest.fixture
def no_downloads(monkeypatch):
    """Any attempt to fetch weights (mmengine's http / torchvision / open-mmlab loaders, torch.hub) fails."""
    def refuse(*args, **kwargs):
        raise AssertionError(f'a dry run tried to download {args[:1]}')
    monkeypatch.setattr(mmengine.runner.checkpoint, 'load_url', refuse)
    monkeypatch.setattr(torch.hub, 'load_state_dict_from_url', refuse)


def save_model(model_cfg_or_model, path, cfg_text: str = None) -> str:
    model = model_cfg_or_model
    if isinstance(model, dict):
        model = MODELS.build(model)
    meta = dict(cfg=cfg_text) if cfg_text else dict()
    torch.save(dict(state_dict=model.state_dict(), meta=meta), path)
    return str(path)


@pytest.fixture(scope='module')
def r101_ckpt(tmp_path_factory):
    """Random weights of mmdet's Faster R-CNN R101-FPN (built without its pretrained backbone: nothing fetched)."""
    return save_model(get_model(R101, pretrained=False), tmp_path_factory.mktemp('r101') / 'r101.pth')


@pytest.fixture(scope='module')
def demo_ckpt(tmp_path_factory):
    """Random weights of the demo teacher, with the training config mmengine's Runner stores."""
    cfg = Config.fromfile(DEMO_TEACHER)
    init_default_scope('mmdet')
    return save_model(cfg.model, tmp_path_factory.mktemp('demo') / 'teacher.pth', cfg.pretty_text)


def run(capsys, *argv):
    """Exit code, stdout and stderr of one in-process ``tools/distill.py`` run."""
    rc = distill.main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def written_config(work_dir) -> str:
    files = os.listdir(osp.join(work_dir, 'config'))
    assert len(files) == 1, files
    return osp.join(work_dir, 'config', files[0])


# ---------------------------------------------------------------------------------------------- dry runs
@pytest.mark.parametrize('method,distiller', [('nd', 'kdpp_distiller'), ('reviewkdpp', 'reviewkdpp_distiller')])
def test_dry_run_faster_rcnn_r101_to_r50(capsys, tmp_path, r101_ckpt, no_downloads, method, distiller):
    rc, out, err = run(capsys, R101, R50, '--teacher-ckpt', r101_ckpt, '--method', method, '--work-dir', tmp_path,
                       '--dry-run')
    assert rc == 0, err
    path = written_config(tmp_path)
    assert f'config: {path} (two-stage detectors, mmkd.RoIDistill, method {method})' in out
    assert 'Dry run: the model builds. RoIDistill: student FasterRCNN' in out
    assert 'distillation losses: loss_' in out and r101_ckpt in out
    text = open(path).read()
    # it inherits the student and the shared method settings, and names the teacher: nothing is copied
    assert f"_base_ = ['{R50}', " in text and "roi_losses.py']" in text
    assert f"teacher = dict(cfg_path='{R101}', pretrained=False)" in text
    assert f'distiller=_base_.{distiller}' in text and 'class_means=_base_.class_means' in text
    assert "custom_hooks = [dict(type='mmkd.ClassMeansHook')]" in text
    assert 'abf' not in text  # mmdet's FPNs are the shared settings' 256 channels, 5 levels
    cfg = Config.fromfile(path)
    assert cfg.model.type == 'RoIDistill' and cfg.model.architecture.backbone.depth == 50
    assert cfg.model.teacher_ckpt == r101_ckpt and cfg.train_cfg.max_epochs == 12  # the student's schedule


def test_dry_run_local_configs_with_a_converted_teacher(capsys, tmp_path, demo_ckpt, no_downloads):
    """Local config files (the teacher loaded from its file), a student normalised otherwise: refused, then
    accepted with --teacher-preprocessing convert, which the algorithm applies."""
    other = ['--cfg-options', 'model.architecture.data_preprocessor.bgr_to_rgb=False']
    args = [DEMO_TEACHER, DEMO_STUDENT, '--teacher-ckpt', demo_ckpt, '--method', 'reviewkd', '--work-dir', tmp_path]
    rc, out, err = run(capsys, *args, *other)
    assert rc == 2 and not osp.exists(osp.join(tmp_path, 'config'))
    assert "bgr_to_rgb=True (the teacher checkpoint's training config)" in err, err
    assert 'bgr_to_rgb=False' in err and '--teacher-preprocessing convert' in err
    rc, out, err = run(capsys, *args, '--dry-run', '--teacher-preprocessing', 'convert', *other)
    assert rc == 0, err
    text = open(written_config(tmp_path)).read()
    assert f"teacher = Config.fromfile('{DEMO_TEACHER}').model" in text and "teacher_preprocessing='convert'" in text
    # the demo FPN is 64 channels wide: the ABF connector is set to it
    assert "model['distiller']['connectors']['abf'].update(in_channels=64, out_channels=64, mid_channels=64)" in text
    assert 'Dry run: the model builds' in out


def test_dry_run_dense_pair(capsys, tmp_path, no_downloads):
    """The demo GFL R50 -> R18 pair (64-channel FPNs), FGD: mmkd.DenseDistill, FGD's widths set to the pair's."""
    cfg = Config.fromfile(DEMO_GFL_TEACHER)
    init_default_scope('mmdet')
    ckpt = save_model(cfg.model, tmp_path / 'gfl_teacher.pth', cfg.pretty_text)
    rc, out, err = run(capsys, DEMO_GFL_TEACHER, DEMO_GFL_STUDENT, '--teacher-ckpt', ckpt, '--method', 'fgd',
                       '--work-dir', tmp_path / 'run', '--dry-run')
    assert rc == 0, err
    assert '(dense detectors, mmkd.DenseDistill, method fgd)' in out
    assert 'Dry run: the model builds. DenseDistill: student GFL' in out and 'loss_fgd_fpn4' in out
    text = open(written_config(tmp_path / 'run')).read()
    assert "dense_losses.py']" in text and 'distiller=_base_.fgd_distiller' in text
    assert '    _loss.update(student_channels=64, teacher_channels=64)\ndel _loss' in text
    losses = Config.fromfile(written_config(tmp_path / 'run')).model.distiller.distill_losses
    assert {(v.student_channels, v.teacher_channels) for v in losses.values()} == {(64, 64)}


# ---------------------------------------------------------------------------------------------- refusals
@pytest.mark.parametrize('args,expected', [
    (['--method', 'nd', '--cfg-options', 'model.architecture.roi_head.bbox_head.num_classes=3'],
     'The teacher detects 4 classes'),
    (['--method', 'reviewkd', '--cfg-options', 'model.architecture.neck.num_outs=4'],
     "the student's neck has num_outs=4, start_level=0 and the teacher's num_outs=5"),
    (['--method', 'nd', '--cfg-options', 'model.architecture.roi_head.bbox_head.fc_out_channels=256'],
     'they are 256-d (student) and 512-d (teacher)'),
    (['--method', 'fgd'], "Method 'fgd' is not one mmkd has for two-stage detectors"),
])
def test_refusals_before_anything_is_built(capsys, tmp_path, demo_ckpt, monkeypatch, args, expected):
    monkeypatch.setattr(distill, 'build_model', lambda cfg: pytest.fail('built'))
    monkeypatch.setattr(distill, 'load_train_tool', lambda: pytest.fail('trained'))
    rc, out, err = run(capsys, DEMO_TEACHER, DEMO_STUDENT, '--teacher-ckpt', demo_ckpt, '--work-dir', tmp_path,
                       *args)
    assert rc == 2 and expected in err, err
    assert not osp.exists(osp.join(tmp_path, 'config'))


def test_refuses_a_missing_checkpoint_and_a_pair_of_two_kinds(capsys, tmp_path, demo_ckpt):
    rc, _, err = run(capsys, DEMO_TEACHER, DEMO_STUDENT, '--teacher-ckpt', tmp_path / 'none.pth', '--method', 'kd')
    assert rc == 2 and 'none.pth' in err and 'does not exist' in err and 'tools/train.py <teacher config>' in err
    rc, _, err = run(capsys, RETINANET, DEMO_STUDENT, '--teacher-ckpt', demo_ckpt, '--method', 'kd')
    assert rc == 2 and 'The teacher is a dense detector and the student a two-stage one' in err
    rc, _, err = run(capsys, RETINANET, DEMO_GFL_STUDENT, '--teacher-ckpt', demo_ckpt, '--method', 'pkd')
    assert rc == 2 and 'The teacher has a retina head and the student a gfl head' in err
    rc, _, err = run(capsys, RETINANET, RETINANET, '--teacher-ckpt', demo_ckpt, '--method', 'ld')
    assert rc == 2 and "Method 'ld' distils gfl heads; these detectors have retina heads" in err


def test_method_list(capsys):
    rc, out, _ = run(capsys, '--method', 'list')
    assert rc == 0
    assert 'two-stage detectors -> mmkd.RoIDistill' in out and 'dense detectors -> mmkd.DenseDistill' in out
    for name in ('kd', 'nd', 'nc', 'icd', 'reviewkd', 'reviewkdpp'):
        assert f'\n  {name} ' in out.split('dense detectors')[0]
    assert '(alias kdpp)' in out and '[_base_/distill/roi_losses.py: kdpp_distiller]' in out
    dense = out.split('dense detectors')[1]
    for name in ('pkd', 'cwd', 'fgd', 'crosskd', 'crosskd_pkd', 'ld', 'nd', 'icd'):
        assert f'\n  {name} ' in dense
    assert '[_base_/distill/dense_losses.py: crosskd, crosskd_pkd_{head}_distiller]' in dense


def test_dist_distill_launches_distill_py_on_n_processes(tmp_path):
    stub = tmp_path / 'python'
    log = tmp_path / 'calls.log'
    stub.write_text(f'#!/bin/sh\nfor a in "$@"; do echo "$a"; done > "{log}"\n')
    stub.chmod(stub.stat().st_mode | stat.S_IXUSR)
    env = dict(os.environ, PYTHON=str(stub))
    subprocess.run(['bash', osp.join(REPO, 'tools/dist_distill.sh'), 't.py', 's.py', '3', '--teacher-ckpt', 'c.pth',
                    '--method', 'nd'], env=env, check=True, timeout=60)
    args = log.read_text().split('\n')
    assert args[:2] == ['-m', 'torch.distributed.run'] and '--nproc_per_node=3' in args
    i = args.index(osp.join(REPO, 'tools/distill.py'))
    assert args[i + 1:i + 9] == ['t.py', 's.py', '--launcher', 'pytorch', '--teacher-ckpt', 'c.pth', '--method', 'nd']


# ---------------------------------------------------------------------------------------------- training
def test_trains_two_iterations_from_the_command(run_tool, tiny_config, tmp_path):
    """The tiny R18 Faster R-CNN of conftest.py as teacher (random weights) and student, KD++ (ND + KD, class
    means from one teacher pass): 2 iterations, a distillation checkpoint."""
    cfg = Config.fromfile(tiny_config, import_custom_modules=False)
    init_default_scope('mmdet')
    ckpt = save_model(cfg.model, tmp_path / 'teacher.pth')
    work_dir = tmp_path / 'run'
    proc = run_tool('tools/distill.py', tiny_config, tiny_config, '--teacher-ckpt', ckpt, '--method', 'kdpp',
                    '--work-dir', str(work_dir))
    log = proc.stdout + proc.stderr
    assert f'config: {work_dir}/config/nd_tiny_faster_rcnn_r18_to_tiny_faster_rcnn_r18.py' in log, log[-3000:]
    assert 'Iter(train) [2/2]' in log and 'distill.loss_nd' in log and 'distill.loss_kd' in log, log[-3000:]
    state = torch.load(work_dir / 'iter_2.pth', weights_only=False)['state_dict']
    assert any(k.startswith('teacher.') for k in state) and any(k.startswith('architecture.') for k in state)
    assert bool((state['class_means.counts'] > 0).any())  # filled by ClassMeansHook's teacher pass
