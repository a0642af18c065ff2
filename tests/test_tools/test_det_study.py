"""tools/analysis/det_study.py: data splits, schedule overrides, the summary table and the plateau check."""
import json
import os.path as osp
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.join(REPO, 'tools', 'analysis'))
import det_study  # noqa: E402


def test_heldout_split_is_disjoint_from_training_and_comes_from_the_training_distribution(tmp_path):
    args = det_study.parse_args(['--data-root', str(tmp_path / 'data'), '--num-train', '6', '--num-heldout', '3',
                                 '--num-val', '2', '--img-size', '64', '--work-dir', str(tmp_path / 'wd')])
    data = det_study.prepare_data(args)
    opts = {split: dict(o.split('=', 1) for o in data[split]) for split in ('val', 'heldout')}
    train = json.load(open(opts['val']['train_dataloader.dataset.ann_file']))
    heldout = json.load(open(opts['heldout']['val_evaluator.ann_file']))
    train_ids, heldout_ids = {im['id'] for im in train['images']}, {im['id'] for im in heldout['images']}
    assert len(train_ids) == 6 and len(heldout_ids) == 3 and not train_ids & heldout_ids
    assert {a['image_id'] for a in heldout['annotations']} <= heldout_ids
    assert {a['image_id'] for a in train['annotations']} <= train_ids
    # the held-out images are generated training images; both splits train on the same part
    assert opts['heldout']['val_dataloader.dataset.data_prefix.img'] == 'images/train/'
    assert opts['val']['val_dataloader.dataset.data_prefix.img'] == 'images/val/'
    assert opts['val']['train_dataloader.dataset.ann_file'] == opts['heldout']['train_dataloader.dataset.ann_file']
    assert opts['val']['val_evaluator.ann_file'].endswith('instances_val.json')


def test_schedule_options_scale_milestones_validation_and_checkpoint():
    opts = det_study.schedule_options('configs/demo/faster_rcnn_r18_baseline.py', 600)
    import argparse
    from mmengine.config import Config, DictAction
    cfg = Config.fromfile(osp.join(REPO, 'configs/demo/faster_rcnn_r18_baseline.py'))
    old = cfg.train_cfg.max_iters
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)  # as tools/train.py parses them
    cfg.merge_from_dict(parser.parse_args(['--cfg-options', *opts]).cfg_options)
    assert cfg.train_cfg.max_iters == 600 and cfg.default_hooks.checkpoint.interval == 600
    assert cfg.train_cfg.val_interval == 600 // 4
    multistep = [i for i, s in enumerate(cfg.param_scheduler) if s['type'] == 'MultiStepLR'][0]
    base = Config.fromfile(osp.join(REPO, 'configs/demo/faster_rcnn_r18_baseline.py'))
    assert cfg.param_scheduler[multistep]['milestones'] == [int(m * 600 / old)
                                                            for m in base.param_scheduler[multistep]['milestones']]
    assert cfg.param_scheduler[multistep]['end'] == 600 and cfg.param_scheduler[multistep]['type'] == 'MultiStepLR'
    assert det_study.schedule_options('configs/demo/faster_rcnn_r18_baseline.py', None) == []


def _record(row, seed, curve):
    return dict(method=row, seed=seed, metric=curve[-1][1], seconds=10.0,
                metrics={'coco/bbox_mAP': curve[-1][1], 'coco/bbox_mAP_50': 2 * curve[-1][1]},
                history=[{'step': s, 'coco/bbox_mAP': v} for s, v in curve])


def test_table_reports_every_seed_mean_std_deltas_and_the_last_quarter_change():
    teacher = _record('teacher', 0, [(100, 0.2), (300, 0.5), (400, 0.52)])
    rows = {'baseline': [_record('baseline', s, [(25, 0.1), (75, 0.30 + s / 100), (100, 0.305 + s / 100)])
                         for s in (0, 1, 2)],
            'kd': [_record('kd', s, [(25, 0.1), (75, 0.3), (100, v)]) for s, v in ((0, 0.33), (1, 0.35), (2, 0.34))]}
    text = det_study.table(teacher, rows, [0, 1, 2])
    lines = {line.split('|')[1].strip(): [c.strip() for c in line.split('|')[2:-1]] for line in text.splitlines()[2:]}
    assert lines['teacher R50-FPN (seed 0)'][0] == '0.520' and lines['teacher R50-FPN (seed 0)'][7] == '0.020'
    base = lines['student R18-FPN alone']
    assert base[:3] == ['0.305', '0.315', '0.325'] and base[3] == '0.315 ± 0.010' and base[7] == '0.005'
    kd = lines['KD (RoI logits)']
    assert kd[3] == '0.340 ± 0.010' and kd[4] == '+0.025' and kd[5] == ''
    assert det_study.last_quarter_change(rows['kd']) == pytest.approx(0.04)


def test_bad_arguments_stop_at_once():
    for argv, message in ((['--eval-on', 'heldout', '--num-heldout', '0'], 'num-heldout'),
                          (['--jobs', '0'], '--jobs must be >= 1'), (['--rows', 'nope'], 'invalid choice')):
        out = subprocess.run([sys.executable, 'tools/analysis/det_study.py', *argv], cwd=REPO, capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 2 and message in out.stderr, out.stderr
