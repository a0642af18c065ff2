"""Fixtures for the command-line tool tests: a tiny COCO set, a tiny Faster R-CNN config, a tool runner.

The tools run as subprocesses of this interpreter (``sys.executable``), exactly as users call them.
"""
import functools
import json
import os
import os.path as osp
import socket
import subprocess
import sys

import pytest

from mmkd.datasets.synthetic import generate_coco_detection

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TIMEOUT = 300

# Registered through the config's custom_imports: records what the tests check from inside the runner.
HOOK_MODULE = '''
import os.path as osp

import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class RecordRunHook(Hook):
    """Saves the optimizer state and iteration the loop starts from, and each rank's world size at the end."""

    def before_train(self, runner):
        torch.save(dict(iter=runner.iter, optimizer=runner.optim_wrapper.state_dict()),
                   osp.join(runner.work_dir, f'before_train_rank{runner.rank}.pth'))

    def after_train(self, runner):
        with open(osp.join(runner.work_dir, f'after_train_rank{runner.rank}.txt'), 'w') as f:
            f.write(f'{runner.world_size} {runner.iter}')
'''

# A plain mmdet Faster R-CNN (ResNet-18, no pretrained weights) on 64x64 images; the base config's
# env_cfg.dist_cfg.backend stays 'nccl': the tools must switch to gloo without CUDA.
CONFIG = '''
_base_ = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['record_run_hook'], allow_failed_imports=False)
custom_hooks = [dict(type='RecordRunHook')]
model = dict(
    backbone=dict(depth=18, init_cfg=None),
    neck=dict(in_channels=[64, 128, 256, 512]),
    roi_head=dict(bbox_head=dict(num_classes={num_classes})))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(64, 64), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(64, 64), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
metainfo = dict(classes={classes!r})
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(data_root={data_root!r}, ann_file={train_ann_file!r}, data_prefix=dict(img={train_img_dir!r}),
                 metainfo=metainfo, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(data_root={data_root!r}, ann_file={val_ann_file!r}, data_prefix=dict(img={val_img_dir!r}),
                 metainfo=metainfo, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file={val_ann_file!r})
test_evaluator = val_evaluator
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=2, val_interval=1000, val_begin=1000)
optim_wrapper = dict(optimizer=dict(lr=0.01))
param_scheduler = [dict(type='LinearLR', start_factor=0.5, by_epoch=False, begin=0, end=4)]
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False),
    logger=dict(type='LoggerHook', interval=1))
log_processor = dict(by_epoch=False)
'''


@pytest.fixture(scope='session')
def tiny_config(tmp_path_factory) -> str:
    """Path of the tiny detector config (8 training and 4 validation images of 64x64, 2 classes)."""
    root = tmp_path_factory.mktemp('tiny_det')
    paths = generate_coco_detection(root / 'data', num_train=8, num_val=4, img_size=64, num_classes=2)
    with open(paths['train_ann_file']) as f:
        categories = sorted(json.load(f)['categories'], key=lambda c: c['id'])
    classes = tuple(c['name'] for c in categories)
    (root / 'record_run_hook.py').write_text(HOOK_MODULE)
    config = root / 'tiny_faster_rcnn_r18.py'
    config.write_text(CONFIG.format(num_classes=len(classes), classes=classes, **paths))
    return str(config)


def _tool_env(config: str, **extra: str) -> dict:
    """Environment of a tool process: the venv first on PATH, the config's hook module importable."""
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', **extra)
    env['PATH'] = osp.dirname(sys.executable) + os.pathsep + env.get('PATH', '')
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [osp.dirname(config), env.get('PYTHONPATH')]))
    return env


def _run_tool(config: str, *args: str, ok: bool = True, **env: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, *args] if args[0].endswith('.py') else ['bash', *args]
    proc = subprocess.run(cmd, cwd=REPO, env=_tool_env(config, **env), capture_output=True, text=True,
                          timeout=TIMEOUT)
    output = f'{" ".join(cmd)} exited with {proc.returncode}:\n{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}'
    assert (proc.returncode == 0) == ok, output
    return proc


@pytest.fixture(scope='session')
def run_tool(tiny_config):
    """``run_tool('tools/x.py' or 'tools/x.sh', *args, ok=True, **env)``: run a tool from the repository root
    with this interpreter (``.sh`` tools find it first on PATH); assert that it succeeds (fails if ``ok=False``)
    and return the finished process (``stdout``/``stderr`` captured)."""
    return functools.partial(_run_tool, tiny_config)


@pytest.fixture
def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture(scope='session')
def trained(tiny_config, run_tool, tmp_path_factory) -> str:
    """Work dir of a 2-iteration ``tools/train.py`` run (checkpoint ``iter_2.pth``)."""
    work_dir = tmp_path_factory.mktemp('train')
    run_tool('tools/train.py', tiny_config, '--work-dir', str(work_dir))
    return str(work_dir)
