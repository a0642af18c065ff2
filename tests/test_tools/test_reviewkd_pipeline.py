"""ReviewKD / ReviewKD++ through the tools (demo configs, R50-FPN teacher -> R18-FPN student, 8 generated 64x64
images, 2 iterations): train, test, convert to a plain student that tests alike."""
import os.path as osp
import pickle
import re
import sys

import torch

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from test_distill_pipeline import data, options, run, teacher_ckpt  # noqa: E402,F401  (module fixtures)

CONFIG = 'configs/demo/faster_rcnn_r50_r18_{}.py'


def test_reviewkd_trains_hcl_only(data, teacher_ckpt, tmp_path):  # noqa: F811
    log = run('tools/train.py', CONFIG.format('reviewkd'), '--work-dir', str(tmp_path),
              *options(data, **{'model.teacher_ckpt': teacher_ckpt}))
    losses = re.findall(r'(distill\.loss_\w+): (\S+)', log)
    assert {name for name, _ in losses} == {'distill.loss_hcl'}
    assert all(0 < float(v) < float('inf') for _, v in losses), losses
    assert 'Iter(train) [2/2]' in log and 'ClassMeansHook' not in log


def test_reviewkdpp_trains_tests_and_converts_to_a_student_that_tests_alike(data, teacher_ckpt, tmp_path):  # noqa: F811
    config = CONFIG.format('reviewkdpp')
    work_dir = tmp_path / 'train'
    log = run('tools/train.py', config, '--work-dir', str(work_dir),
              *options(data, **{'model.teacher_ckpt': teacher_ckpt}))
    losses = re.findall(r'(distill\.loss_\w+): (\S+)', log)
    assert {name for name, _ in losses} == {'distill.loss_hcl', 'distill.loss_nd'}  # no logit KD
    assert all(0 < float(v) < float('inf') for _, v in losses), losses
    assert 'ClassMeansHook: teacher pass' in log and 'Iter(train) [2/2]' in log

    ckpt = str(work_dir / 'iter_2.pth')
    state = torch.load(ckpt, weights_only=False)['state_dict']
    connector_keys = [k for k in state if k.startswith('distiller.connectors.abf.')]
    assert len(connector_keys) == 5 * 12 + 4 * 2  # 5 ABFs (2 convs, 2 BNs of 4 tensors + counter), 4 att_convs
    student_ckpt = str(tmp_path / 'student.pth')
    out = run('tools/model_converters/convert_kd_ckpt_to_student.py', ckpt, '--out-path', student_ckpt)
    assert f'{len([k for k in state if k.startswith("distiller.")])} distiller.*' in out
    converted = torch.load(student_ckpt, weights_only=True)['state_dict']
    assert not any('connectors' in k or 'abfs' in k for k in converted)
    assert set(converted) == {k[len('architecture.'):] for k in state if k.startswith('architecture.')}

    results = {}
    for name, cfg, weights, prefix in (('distill', config, ckpt, 'model.architecture.'),
                                       ('student', 'configs/demo/faster_rcnn_r18_baseline.py', student_ckpt, 'model.')):
        preds_file = str(tmp_path / f'{name}.pkl')
        log = run('tools/test.py', cfg, weights, '--work-dir', str(tmp_path / name), '--out', preds_file,
                  *options(data, **{f'{prefix}test_cfg.rcnn.score_thr': 0.0}))
        with open(preds_file, 'rb') as f:
            results[name] = (re.search(r'coco/bbox_mAP: (\S+)', log).group(1), pickle.load(f))
    (map_d, preds_d), (map_s, preds_s) = results['distill'], results['student']
    assert map_d == map_s and len(preds_d) == len(preds_s) == 4
    assert sum(len(p['pred_instances']['scores']) for p in preds_d) > 0
    for a, b in zip(preds_d, preds_s):
        for key in ('bboxes', 'scores', 'labels'):
            torch.testing.assert_close(a['pred_instances'][key], b['pred_instances'][key], rtol=0, atol=0)
