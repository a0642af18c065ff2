"""mmrazor's detection distillation configs, run by mmkd (``configs/mmrazor/``, ``docs/mmrazor_configs.md``).

Every config trains one step on generated COCO images with its real student and teacher architectures (random
weights: no download; 64x64 images); a teacher checkpoint that does not fit is refused by ``tools/train.py``; a
NaN teacher stops training with a ``FloatingPointError``; a trained checkpoint converts to a plain mmdet one.
"""
import functools
import glob
import json
import math
import os.path as osp
import runpy
import subprocess
import sys

import mmrazor
import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.hub import get_config
from mmengine.runner import Runner
from torch.nn.modules.batchnorm import _BatchNorm

from mmkd.datasets.synthetic import generate_coco_detection
from mmkd.models.algorithms import FpnTeacherDistill, FullTeacherDistill
from mmkd.models.utils.preprocessing import compare_preprocessing, model_preprocessor
from mmkd.registry import MODELS

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG_DIR = osp.join(REPO, 'configs', 'mmrazor')
RAZOR_DIR = osp.join(osp.dirname(mmrazor.__file__), '.mim', 'configs', 'distill', 'mmdet')
NAMES = sorted(osp.splitext(osp.basename(p))[0] for p in glob.glob(osp.join(CONFIG_DIR, '*.py')))
CONVERTED = 'pkd_fpn_faster-rcnn_r101_faster-rcnn_r50_2x_coco'  # the run whose checkpoint is converted
#: the run whose teacher keeps the default teacher_fuse_conv_bn=True (R101); the others keep their BatchNorms, which
#: saves the two traced teacher passes of the folding (the losses differ by float rounding only)
FUSED = (CONVERTED, )
#: image side: 64 px, but 128 for FBKD (its connectors' max-pooling leaves no pixel of a smaller image) and 96 for
#: RepPoints (mmcv's deformable convolutions of its X101-DCN teacher refuse a stride-32 map smaller than 3x3)
IMG = dict(fbkd_fpn_faster_rcnn=128, pkd_fpn_reppoints=96)
#: the folder of mmdet's model zoo that holds each teacher detector's checkpoints
ZOO_FOLDERS = dict(FasterRCNN='faster_rcnn', RetinaNet='retinanet', GFL='gfl', FCOS='fcos', MaskRCNN='swin',
                   RepPointsDetector='reppoints')


def test_one_mmkd_config_per_mmrazor_detection_config():
    razor = sorted(osp.splitext(osp.basename(p))[0] for p in glob.glob(osp.join(RAZOR_DIR, '*', '*.py')))
    assert len(razor) == 11 and NAMES == razor


@pytest.fixture(scope='module')
def train_tool() -> dict:
    return runpy.run_path(osp.join(REPO, 'tools/train.py'))


@pytest.mark.parametrize('name', NAMES)
def test_config_resolves_to_mmkd_and_mmdet_3(name, train_tool):
    """The algorithm is mmkd's, both models name mmdet 3.x configs with the same input normalisation, and the
    teacher checkpoint is the teacher's own (a URL of mmdet's model zoo for the teacher's detector); without it
    tools/train.py refuses the run."""
    cfg = Config.fromfile(osp.join(CONFIG_DIR, f'{name}.py'))
    algorithm = MODELS.get(cfg.model.type)
    expected = FullTeacherDistill if name.startswith('fbkd') else FpnTeacherDistill
    assert algorithm is expected, cfg.model.type
    teacher_cfg = get_config(cfg.model.teacher.cfg_path)
    if 'cfg_path' in cfg.model.architecture:  # MGD's student is an inline RetinaNet
        get_config(cfg.model.architecture.cfg_path)
    # the teacher is fed the student's batch unchanged: same mean, std and channel order
    assert compare_preprocessing(model_preprocessor(cfg.model), model_preprocessor(cfg.model.teacher)) == []
    assert not cfg.model.teacher.get('pretrained')  # teacher weights: teacher_ckpt alone, checked
    folder = ZOO_FOLDERS[teacher_cfg.model.type]
    assert cfg.model.teacher_ckpt.startswith(f'https://download.openmmlab.com/mmdetection/v2.0/{folder}/'), \
        cfg.model.teacher_ckpt
    cfg.model.teacher_ckpt = None
    with pytest.raises(ValueError, match=f'{expected.__name__}: model.teacher_ckpt is not set'):
        train_tool['refuse_random_teacher'](cfg)


# ------------------------------------------------------------------------------------------ mmrazor's losses
def _r18(cfg_path: str) -> dict:
    """An mmdet detector config with a ResNet-18 backbone, built from scratch (small and fast)."""
    model = get_config(cfg_path).model
    model.backbone.update(depth=18, init_cfg=None)
    model.neck.in_channels = [64, 128, 256, 512]
    return dict(**model, _scope_='mmdet')


@pytest.mark.parametrize('name,detector,razor_type', [
    ('cwd_fpn_retina_r101_retina_r50_1x_coco', 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py',
     'FpnTeacherDistill'),
    ('fbkd_fpn_faster-rcnn_r101_faster-rcnn_r50_1x_coco', 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py',
     'SingleTeacherDistill')])
def test_same_losses_as_mmrazor(name, detector, razor_type):
    """mmkd's algorithm and mmrazor's, with the same weights and the config's distiller, give the same losses
    (the teacher's folded BatchNorms: float rounding only)."""
    from mmdet.testing import demo_mm_inputs
    distiller = Config.fromfile(osp.join(CONFIG_DIR, f'{name}.py')).model.distiller
    common = dict(_scope_='mmrazor', architecture=_r18(detector), teacher=_r18(detector), distiller=distiller)
    theirs = MODELS.build(dict(common, type=f'mmrazor.{razor_type}'))
    ours = MODELS.build(dict(common, type=Config.fromfile(osp.join(CONFIG_DIR, f'{name}.py')).model.type,
                             allow_random_teacher=True))
    ours.load_state_dict(theirs.state_dict())  # the teacher's BatchNorms are folded on load
    ours.train(), theirs.train()
    batch = ours.data_preprocessor(demo_mm_inputs(1, [(3, 128, 128)], num_items=[3], num_classes=80), True)
    losses = []
    for model in (ours, theirs):
        torch.manual_seed(1)  # the same RPN / RoI samples and MGD masks
        losses.append({k: torch.stack(v).detach() if isinstance(v, list) else v.detach()  # RetinaNet: per level
                       for k, v in model.loss(batch['inputs'], batch['data_samples']).items()})
    assert losses[0].keys() == losses[1].keys() and any(k.startswith('distill.') for k in losses[0])
    for key, value in losses[0].items():
        torch.testing.assert_close(value, losses[1][key], rtol=1e-4, atol=1e-5, msg=key)


# ------------------------------------------------------------------------------------------ one training step
@pytest.fixture(scope='module')
def coco(tmp_path_factory) -> dict:
    paths = generate_coco_detection(tmp_path_factory.mktemp('mmrazor_coco'), num_train=2, num_val=1,
                                    img_size=128, num_classes=2)
    with open(paths['train_ann_file']) as f:
        paths['classes'] = tuple(c['name'] for c in sorted(json.load(f)['categories'], key=lambda c: c['id']))
    return paths


@pytest.fixture(scope='module', autouse=True)
def _metafiles_read_once():
    """mmengine reads all of mmdet's metafiles (about 200 YAML files, seconds) each time it resolves an ``mmdet::``
    name (a base config, a ``cfg_path``): here each file is read once, the answers stay the same."""
    from mmengine.config import utils
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(utils, 'load', functools.lru_cache(maxsize=None)(utils.load))
        yield


def tiny(name: str, coco: dict, work_dir: str, checkpoint: bool = False, validate: bool = False,
         fuse: bool = False) -> Config:
    """The config on the generated images (64x64, one step of 2 images), with a random teacher and no
    pretrained download (the models are built from their mmdet configs as they are); ``validate``: evaluate
    student and teacher after the step (mmrazor's ``SingleTeacherDistillValLoop``); ``fuse``: the teacher's
    BatchNorms folded (``teacher_fuse_conv_bn``, as the config has it), else kept."""
    cfg = Config.fromfile(osp.join(CONFIG_DIR, f'{name}.py'), format_python_code=False)
    size = next((px for prefix, px in IMG.items() if name.replace('-', '_').startswith(prefix)), 64)
    cfg.work_dir = work_dir
    cfg.model.teacher_ckpt = None
    cfg.model.allow_random_teacher = True
    cfg.model.teacher_fuse_conv_bn = fuse and cfg.model.get('teacher_fuse_conv_bn', True)
    for role in ('architecture', 'teacher'):
        if 'cfg_path' in cfg.model[role]:
            cfg.model[role].pretrained = False
    for split, loader in (('train', cfg.train_dataloader), ('val', cfg.val_dataloader),
                          ('val', cfg.test_dataloader)):
        loader.update(batch_size=2 if split == 'train' else 1, num_workers=0, persistent_workers=False)
        loader.dataset.update(data_root=coco['data_root'], ann_file=coco[f'{split}_ann_file'],
                              data_prefix=dict(img=coco[f'{split}_img_dir']), metainfo=dict(classes=coco['classes']))
        for transform in loader.dataset.pipeline:
            if transform.type == 'Resize':
                transform.scale = (size, size)
    for evaluator in (cfg.val_evaluator, cfg.test_evaluator):
        evaluator.ann_file = coco['val_ann_file']
    cfg.train_cfg.update(max_epochs=1, val_begin=1 if validate else 2)
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1, save_optimizer=False,
                                        save_param_scheduler=False) if checkpoint else None
    return cfg


class SnapshotHook(Hook):
    """Copies of the student's and the teacher's parameters just before the first training step (after the
    runner initialised the weights), to compare with those after it; the number of detections of each
    validation step."""

    def __init__(self) -> None:
        self.val_detections = []

    def after_val_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self.val_detections.append([len(out.pred_instances) for out in outputs])

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        model = runner.model
        self.student = {k: v.detach().clone() for k, v in model.student.named_parameters()}
        self.teacher = {k: v.detach().clone() for k, v in model.teacher.named_parameters()}

    @staticmethod
    def changed(module: torch.nn.Module, before: dict) -> int:
        return sum(not torch.equal(v, before[k]) for k, v in module.named_parameters())


def build_runner(cfg: Config) -> Runner:
    """The runner of ``cfg``, whose models keep the random weights PyTorch built them with: mmengine's
    ``init_weights`` would download the ImageNet backbones (``Pretrained`` init_cfg) and MGD's teacher
    neck/head."""
    runner = Runner.from_cfg(cfg)
    runner.model._is_init = True
    return runner


@pytest.fixture(scope='module')
def train_one_step(coco, tmp_path_factory):
    """``train_one_step(name)``: one training step of a config; what it logged, its work dir, parameter changes."""
    done = {}

    def run(name: str) -> dict:
        if name not in done:
            work_dir = str(tmp_path_factory.mktemp(name.replace('-', '_')))
            runner = build_runner(tiny(name, coco, work_dir, checkpoint=name == CONVERTED,
                                       validate=name == CONVERTED, fuse=name in FUSED))
            snapshot = SnapshotHook()
            runner.register_hook(snapshot)
            runner.train()
            model, scalars = runner.model, runner.message_hub.log_scalars
            done[name] = dict(
                work_dir=work_dir, iters=runner.iter,
                losses={k[len('train/'):]: v.current() for k, v in scalars.items()
                        if k.startswith('train/') and 'loss' in k},
                val_detections=snapshot.val_detections,
                student_changed=snapshot.changed(model.student, snapshot.student),
                teacher_changed=snapshot.changed(model.teacher, snapshot.teacher),
                teacher_training=[n for n, m in model.teacher.named_modules() if m.training],
                backbone_batchnorms=sum(isinstance(m, _BatchNorm) for m in model.teacher.backbone.modules()),
                distill_losses=sorted(model.distiller.distill_losses))
            del runner, model, snapshot
        return done[name]

    return run


@pytest.mark.parametrize('name', NAMES)
def test_config_trains_one_step(name, train_one_step):
    run = train_one_step(name)
    assert run['iters'] == 1
    distill = {k: v for k, v in run['losses'].items() if k.startswith('distill.')}
    assert sorted(k[len('distill.'):] for k in distill) == run['distill_losses']
    assert any(k.startswith('student.loss') for k in run['losses'])
    assert all(math.isfinite(v) for v in run['losses'].values()), run['losses']
    assert sum(distill.values()) > 0, distill
    assert run['student_changed'] > 0 and run['teacher_changed'] == 0
    assert run['teacher_training'] == []  # the whole teacher in eval mode (mmrazor: its BatchNorms only)
    if name in FUSED:  # every BatchNorm of the ResNet backbone folded into its convolution
        assert run['backbone_batchnorms'] == 0
    if name == CONVERTED:  # SingleTeacherDistillValLoop: the student predicts the validation image, then the teacher
        assert len(run['val_detections']) == 2, run['val_detections']
    if name.endswith('_visualization'):  # RazorVisualizationHook: student P3-P6 before training and after epoch 1
        drawn = glob.glob(osp.join(run['work_dir'], '*', 'retina_vis', '*.jpg'))
        assert len(drawn) == 8, drawn


def test_converted_checkpoint_is_a_plain_mmdet_checkpoint(train_one_step, tmp_path, monkeypatch):
    run = train_one_step(CONVERTED)
    ckpt, out = osp.join(run['work_dir'], 'epoch_1.pth'), str(tmp_path / 'student.pth')
    monkeypatch.setattr(sys, 'argv', ['convert', ckpt, '--out-path', out])
    runpy.run_path(osp.join(REPO, 'tools/model_converters/convert_kd_ckpt_to_student.py'), run_name='__main__')
    converted = torch.load(out, weights_only=True)
    student_cfg = get_config('mmdet::faster_rcnn/faster-rcnn_r50_fpn_2x_coco.py')
    plain = MODELS.build(dict(**student_cfg.model, _scope_='mmdet'))
    plain.load_state_dict(converted['state_dict'], strict=True)  # every weight, nothing else
    trained = torch.load(ckpt, weights_only=True)['state_dict']
    assert torch.equal(plain.backbone.conv1.weight, trained['architecture.backbone.conv1.weight'])
    assert any(k.startswith('teacher.') for k in trained)


# ------------------------------------------------------------------------------------------ refusals
def test_train_tool_refuses_a_teacher_checkpoint_that_does_not_fit(tmp_path):
    """mmrazor's RetinaNet CWD config loaded its base's Faster R-CNN R101 checkpoint into the RetinaNet teacher
    with a warning (backbone and FPN weights of matching shape replaced); ``tools/train.py`` refuses that checkpoint
    before building anything else. (A stand-in of its layout: every tensor a broadcast zero, a few bytes.)"""
    teacher_cfg = get_config('mmdet::faster_rcnn/faster-rcnn_r101_fpn_2x_coco.py')
    with torch.device('meta'):
        frcnn = MODELS.build(dict(**teacher_cfg.model, _scope_='mmdet'))
    ckpt = str(tmp_path / 'faster_rcnn_r101_fpn_2x_coco.pth')
    torch.save(dict(state_dict={k: torch.zeros(()).expand(v.shape) for k, v in frcnn.state_dict().items()}), ckpt)
    config, work_dir = osp.join(CONFIG_DIR, 'cwd_fpn_retina_r101_retina_r50_1x_coco.py'), tmp_path / 'work'
    proc = subprocess.run(
        [sys.executable, 'tools/train.py', config, '--work-dir', str(work_dir), '--cfg-options',
         f'model.teacher_ckpt={ckpt}'], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert f"ValueError: teacher_ckpt '{ckpt}' does not fit the teacher (RetinaNet)" in proc.stderr, \
        proc.stderr[-3000:]
    assert 'bbox_head.' in proc.stderr.split('does not fit the teacher')[-1]
    assert not glob.glob(str(work_dir / '*.pth'))


def test_nan_teacher_stops_training(coco, tmp_path):
    runner = build_runner(tiny('cwd_fpn_frcnn_r101_frcnn_r50_1x_coco', coco, str(tmp_path)))
    with torch.no_grad():
        runner.model.teacher.neck.fpn_convs[0].conv.weight[0, 0, 0, 0] = float('nan')
    student = {k: v.detach().clone() for k, v in runner.model.student.named_parameters()}
    with pytest.raises(FloatingPointError, match=r"FpnTeacherDistill: non-finite teacher outputs at training "
                                                 r"iteration 1: teacher record 'fpn' \(neck, data_idx=0; read by "
                                                 r"loss_cwd_fpn0\): \d+ NaN"):
        runner.train()
    assert all(torch.equal(v, student[k]) for k, v in runner.model.student.named_parameters())  # no update
