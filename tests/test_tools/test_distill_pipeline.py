"""The detection distillation pipeline through the tools: train, resume, test, convert, 2-process training,
and the refusals of a teacher or checkpoint that does not fit and of a teacher with non-finite outputs.

Runs the demo configs (R50-FPN teacher -> R18-FPN student) on 8 generated 64x64 images for 2 iterations.
"""
import hashlib
import os
import os.path as osp
import pickle
import re
import subprocess
import sys

import pytest
import torch

from mmkd.datasets.synthetic import generate_coco_detection

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
METHODS = ('nd', 'nc', 'icd', 'kd')

# Loaded through custom_imports: dumps each rank's class means once ClassMeansHook (priority VERY_HIGH) is done,
# and again after training.
DUMP_HOOK = '''
import os.path as osp
import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class DumpClassMeansHook(Hook):
    priority = 'LOW'

    def before_train(self, runner):
        self._dump(runner, 'means')

    def after_train(self, runner):
        self._dump(runner, 'means_after')

    def _dump(self, runner, name):
        model = getattr(runner.model, 'module', runner.model)
        torch.save(dict(model.class_means.state_dict()), osp.join(runner.work_dir, f'{name}_rank{runner.rank}.pth'))
'''


def run(*args, env=None, ok=True) -> str:
    cmd = [sys.executable, *args] if args[0].endswith('.py') else ['bash', *args]
    env = dict(os.environ, OMP_NUM_THREADS='1', **(env or {}))
    env['PATH'] = osp.dirname(sys.executable) + os.pathsep + env.get('PATH', '')
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=400)
    out = proc.stdout + proc.stderr
    assert (proc.returncode == 0) == ok, f'{" ".join(cmd)} exited {proc.returncode}:\n{out[-6000:]}'
    return out


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    return generate_coco_detection(tmp_path_factory.mktemp('demo_data'), num_train=8, num_val=4, img_size=64)


def options(data, iters=2, **extra):
    """--cfg-options that point a demo config at the tiny data and shorten it to ``iters`` iterations."""
    opts = dict(extra)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        opts[f'{loader}.dataset.data_root'] = data['data_root'] + '/'
        opts[f'{loader}.num_workers'] = 0
        opts[f'{loader}.persistent_workers'] = False
    for evaluator in ('val_evaluator', 'test_evaluator'):
        opts[f'{evaluator}.ann_file'] = data['val_ann_file']
    opts.update({'train_dataloader.batch_size': 2, 'train_cfg.max_iters': iters, 'train_cfg.val_interval': 1000,
                 'default_hooks.checkpoint.interval': 2, 'default_hooks.checkpoint.max_keep_ckpts': -1,
                 'default_hooks.logger.interval': 1})
    return ['--cfg-options', *[f'{k}={v}' for k, v in opts.items()]]


@pytest.fixture(scope='module')
def teacher_ckpt(data, tmp_path_factory):
    work_dir = tmp_path_factory.mktemp('teacher')
    run('tools/train.py', 'configs/demo/faster_rcnn_r50_teacher.py', '--work-dir', str(work_dir), *options(data))
    return str(work_dir / 'iter_2.pth')


@pytest.fixture(scope='module')
def nd_run(data, teacher_ckpt, tmp_path_factory):
    work_dir = tmp_path_factory.mktemp('nd')
    log = run('tools/train.py', 'configs/demo/faster_rcnn_r50_r18_nd.py', '--work-dir', str(work_dir),
              *options(data, **{'model.teacher_ckpt': teacher_ckpt}))
    return work_dir, log


@pytest.mark.parametrize('method', METHODS)
def test_method_configs_train_with_finite_distill_losses(method, data, teacher_ckpt, nd_run, tmp_path):
    if method == 'nd':
        log = nd_run[1]
    else:
        log = run('tools/train.py', f'configs/demo/faster_rcnn_r50_r18_{method}.py', '--work-dir', str(tmp_path),
                  *options(data, **{'model.teacher_ckpt': teacher_ckpt}))
    losses = re.findall(r'(distill\.loss_\w+): (\S+)', log)
    assert {name for name, _ in losses} >= {'distill.loss_kd', f'distill.loss_{method}'}
    assert all(torch.isfinite(torch.tensor(float(v))) for _, v in losses), losses
    assert 'Iter(train) [2/2]' in log


def test_class_means_are_computed_saved_and_kept_on_resume(data, teacher_ckpt, nd_run):
    work_dir, log = nd_run
    assert 'ClassMeansHook: teacher pass' in log and 'saved class means to' in log
    saved = osp.join(work_dir, re.search(r'saved class means to \S+/(\d+_\d+)/class_means.pth', log).group(1),
                     'class_means.pth')
    ckpt2 = torch.load(osp.join(work_dir, 'iter_2.pth'), weights_only=False)['state_dict']
    means2 = ckpt2['class_means.means']
    assert torch.equal(torch.load(saved, weights_only=True)['means'], means2)
    assert means2.abs().sum() > 0 and (ckpt2['class_means.counts'] > 0).sum() >= 2

    log = run('tools/train.py', 'configs/demo/faster_rcnn_r50_r18_nd.py', '--work-dir', str(work_dir), '--resume',
              *options(data, iters=3, **{'model.teacher_ckpt': teacher_ckpt}))
    assert 'class means restored from the checkpoint' in log and 'ClassMeansHook: teacher pass' not in log
    assert 'Iter(train) [3/3]' in log
    ckpt3 = torch.load(osp.join(work_dir, 'iter_3.pth'), weights_only=False)['state_dict']
    assert torch.equal(ckpt3['class_means.means'], means2)


def test_converted_student_checkpoint_tests_like_the_distillation_checkpoint(data, nd_run, tmp_path):
    work_dir, _ = nd_run
    ckpt = str(work_dir / 'iter_2.pth')
    student_ckpt = str(tmp_path / 'student.pth')
    run('tools/model_converters/convert_kd_ckpt_to_student.py', ckpt, '--out-path', student_ckpt)
    results = {}
    for name, config, weights, prefix in (
            ('distill', 'configs/demo/faster_rcnn_r50_r18_nd.py', ckpt, 'model.architecture.'),
            ('student', 'configs/demo/faster_rcnn_r18_baseline.py', student_ckpt, 'model.'),
            # a plain student checkpoint given with the distillation config: loaded into its student
            ('distill_config_student_ckpt', 'configs/demo/faster_rcnn_r50_r18_nd.py', student_ckpt,
             'model.architecture.')):
        out = str(tmp_path / f'{name}.pkl')
        # no teacher_ckpt override: tools/test.py takes the teacher's weights from the checkpoint under test
        log = run('tools/test.py', config, weights, '--work-dir', str(tmp_path / name), '--out', out,
                  *options(data, **{f'{prefix}test_cfg.rcnn.score_thr': 0.0}))
        with open(out, 'rb') as f:
            preds = pickle.load(f)
        results[name] = (re.search(r'coco/bbox_mAP: (\S+)', log).group(1), preds)
    assert 'is a plain checkpoint of the student' in log
    (map_d, preds_d), (map_s, preds_s) = results['distill'], results['student']
    assert map_d == map_s == results['distill_config_student_ckpt'][0]
    assert len(preds_d) == len(preds_s) == 4 and sum(len(p['pred_instances']['scores']) for p in preds_d) > 0
    for a, b, c in zip(preds_d, preds_s, results['distill_config_student_ckpt'][1]):
        for key in ('bboxes', 'scores'):
            torch.testing.assert_close(a['pred_instances'][key], b['pred_instances'][key], rtol=0, atol=0)
            torch.testing.assert_close(c['pred_instances'][key], b['pred_instances'][key], rtol=0, atol=0)


def test_test_tool_refuses_a_checkpoint_of_another_model(data, teacher_ckpt, tmp_path):
    """The R50 teacher's checkpoint given to tools/test.py with the R18 student's distillation config."""
    out = str(tmp_path / 'preds.pkl')
    log = run('tools/test.py', 'configs/demo/faster_rcnn_r50_r18_nd.py', teacher_ckpt, '--work-dir', str(tmp_path),
              '--out', out, *options(data), ok=False)
    assert re.search(rf'Checkpoint {re.escape(teacher_ckpt)} does not fit configs/demo/faster_rcnn_r50_r18_nd.py: '
                     r'\d+ of the \d+ weights of the student \(architecture\) of this distillation config', log), \
        log[-3000:]
    assert 'of another shape' in log and 'Iter(test)' not in log and not osp.exists(out)


def test_non_finite_teacher_is_stopped_before_any_checkpoint(data, teacher_ckpt, tmp_path):
    """A NaN weight in teacher_ckpt: refused when the model is built. Teacher RoI logits that overflow (finite
    weights): training stops at its first step. No checkpoint either way."""
    state = torch.load(teacher_ckpt, weights_only=False)['state_dict']
    nan_state = dict(state)
    nan_state['backbone.conv1.weight'] = state['backbone.conv1.weight'].clone()
    nan_state['backbone.conv1.weight'][0, 0, 0, 0] = float('nan')
    overflow_state = dict(state)
    for name in ('roi_head.bbox_head.fc_cls.weight', 'roi_head.bbox_head.fc_cls.bias'):
        overflow_state[name] = torch.full_like(state[name], 3e38)
    for name, bad_state, expected in (
            ('nan', nan_state, r"ValueError: teacher_ckpt '\S+' holds NaN/Inf values in 1 of the teacher's tensors "
                               r"\(backbone\.conv1\.weight\)"),
            ('overflow', overflow_state, r"FloatingPointError: RoIDistill: non-finite teacher outputs at training "
                                         r"iteration 1: teacher record 'roi_logits' \(roi_head\.bbox_head\.fc_cls; "
                                         r"read by loss_kd\): \d+ NaN and \d+ Inf")):
        ckpt = str(tmp_path / f'{name}_teacher.pth')
        torch.save(dict(state_dict=bad_state), ckpt)
        work_dir = tmp_path / name
        log = run('tools/train.py', 'configs/demo/faster_rcnn_r50_r18_kd.py', '--work-dir', str(work_dir),
                  *options(data, **{'model.teacher_ckpt': ckpt, 'default_hooks.checkpoint.interval': 1}), ok=False)
        assert re.search(expected, log), log[-3000:]
        assert 'Iter(train) [1/2]' not in log and not list(work_dir.rglob('*.pth'))


@pytest.mark.parametrize('momentum', [None, 0.5])
def test_two_process_training_gives_identical_class_means_on_both_ranks(data, teacher_ckpt, tmp_path, free_port,
                                                                        momentum):
    """Exact means: the teacher pass before training; EMA means (momentum 0.5): updated at every step from each
    rank's own batch, which DDP does not synchronise (its buffers are not broadcast)."""
    (tmp_path / 'dump_class_means_hook.py').write_text(DUMP_HOOK)
    config = tmp_path / 'nd_dump.py'
    config.write_text(f"_base_ = '{REPO}/configs/demo/faster_rcnn_r50_r18_nd.py'\n"
                      "custom_imports = dict(imports=['mmkd', 'dump_class_means_hook'], allow_failed_imports=False)\n"
                      "custom_hooks = [dict(type='mmkd.ClassMeansHook'), dict(type='DumpClassMeansHook')]\n"
                      f"model = dict(class_means=dict(momentum={momentum}))\n")
    run('tools/dist_train.sh', str(config), '2', '--work-dir', str(tmp_path),
        *options(data, **{'model.teacher_ckpt': teacher_ckpt}), env=dict(PORT=str(free_port), PYTHONPATH=str(tmp_path)))
    for name in ('means', 'means_after'):
        ranks = [torch.load(tmp_path / f'{name}_rank{r}.pth', weights_only=True) for r in (0, 1)]
        if momentum is None or name == 'means_after':
            assert ranks[0]['means'].abs().sum() > 0 and (ranks[0]['counts'] > 0).sum() >= 2
        for key in ('means', 'counts', 'sums'):
            assert torch.equal(ranks[0][key], ranks[1][key]), (name, key)
    if momentum is not None:  # the checkpoint (rank 0's) holds the means every rank trained with
        ckpt = torch.load(tmp_path / 'iter_2.pth', weights_only=False)['state_dict']
        assert torch.equal(ckpt['class_means.means'], ranks[1]['means'])


def test_compute_class_means_tool_writes_a_file_the_hook_can_load(data, teacher_ckpt, tmp_path):
    from mmkd.structures import ClassMeans
    out = tmp_path / 'means.pth'
    args = ('tools/analysis/compute_class_means.py', 'configs/demo/faster_rcnn_r50_r18_nd.py', '--out', str(out),
            '--work-dir', str(tmp_path / 'log'), '--max-iters', '2',
            *options(data, **{'model.teacher_ckpt': teacher_ckpt}))
    run(*args)
    means = ClassMeans(num_classes=5, feat_dim=512)  # 4 demo classes + background
    meta = means.load(str(out))
    assert means.valid[4] and means.valid.sum() >= 2 and meta['teacher_ckpt'] == teacher_ckpt
    with open(teacher_ckpt, 'rb') as f:
        assert meta['teacher_sha256'] == hashlib.sha256(f.read()).hexdigest()
    before = out.read_bytes()
    assert 'exists' in run(*args, ok=False)  # never overwrites without --force
    assert out.read_bytes() == before
    with pytest.raises(ValueError, match=r'\[81, 1024\]'):
        ClassMeans(num_classes=81, feat_dim=1024).load(str(out))


def test_compute_class_means_tool_refuses_a_teacher_ckpt_that_does_not_fit(data, nd_run, tmp_path):
    """A distillation checkpoint given as the teacher's: refused before the teacher pass, nothing written."""
    wrong = str(nd_run[0] / 'iter_2.pth')
    out = tmp_path / 'means.pth'
    log = run('tools/analysis/compute_class_means.py', 'configs/demo/faster_rcnn_r50_r18_nd.py', '--out', str(out),
              '--work-dir', str(tmp_path / 'log'), *options(data, **{'model.teacher_ckpt': wrong}), ok=False)
    assert f"teacher_ckpt '{wrong}' does not fit the teacher (FasterRCNN)" in log and 'distillation checkpoint' in log
    assert 'teacher pass' not in log and not out.exists()
