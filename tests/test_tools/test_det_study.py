"""The detection study (mmkd.analysis.det_study, tools/analysis/det_study.py): data splits and options, where the
runs go, schedule overrides, the table's paired statistics, and a tiny 6-class study with a failing run."""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
from mmengine.config import Config, DictAction

from mmkd.analysis import det_study
from mmkd.datasets.synthetic import SHAPE_CLASSES

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _merged(config: str, opts: list) -> Config:
    """``config`` with ``opts`` merged as tools/train.py merges --cfg-options."""
    cfg = Config.fromfile(osp.join(REPO, config))
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    cfg.merge_from_dict(parser.parse_args(['--cfg-options', *opts]).cfg_options)
    return cfg


def _num_classes(node) -> list:
    """Every num_classes value under ``node``."""
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == 'num_classes'] + [x for v in node.values() for x in _num_classes(v)]
    if isinstance(node, (list, tuple)):
        return [x for v in node for x in _num_classes(v)]
    return []


def test_heldout_split_is_disjoint_from_training_and_comes_from_the_training_distribution(tmp_path):
    args = det_study.parse_args(['--data-root', str(tmp_path / 'data'), '--num-train', '6', '--num-heldout', '3',
                                 '--num-val', '2', '--img-size', '64', '--work-dir', str(tmp_path / 'wd'),
                                 '--data-seed', '3', '--rows', 'baseline'])
    data = det_study.prepare_data(args)
    assert json.load(open(tmp_path / 'data' / 'manifest.json'))['args']['seed'] == 3  # --data-seed reaches the data
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


def test_tuning_runs_and_other_data_get_their_own_folders(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    parse = lambda argv: det_study.parse_args(['--rows', 'baseline', 'kd', *argv])  # noqa: E731
    val = parse([])
    heldout = parse(['--eval-on', 'heldout'])
    assert val.work_dir == str(tmp_path / 'work_dirs' / 'det_study') == val.out
    assert heldout.work_dir == str(tmp_path / 'work_dirs' / 'det_study_heldout') == heldout.out
    assert heldout.teacher_dir == val.teacher_dir == str(tmp_path / 'work_dirs' / 'det_study' / 'teacher')
    assert val.data_root == heldout.data_root == str(tmp_path / 'data' / 'synthetic_coco')
    six = parse(['--num-classes', '6', '--data-seed', '2', '--eval-on', 'heldout'])
    assert six.work_dir == str(tmp_path / 'work_dirs' / 'det_study_c6_d2_heldout')
    assert six.teacher_dir == str(tmp_path / 'work_dirs' / 'det_study_c6_d2' / 'teacher')
    assert six.data_root == str(tmp_path / 'data' / 'synthetic_coco_c6_d2')
    given = parse(['--eval-on', 'heldout', '--work-dir', 'mine'])
    assert given.work_dir == given.out == str(tmp_path / 'mine') and given.teacher_dir == str(tmp_path / 'mine/teacher')


@pytest.mark.parametrize('row', ['teacher', *[r for r, spec in det_study.ROWS.items()
                                              if osp.isfile(osp.join(REPO, 'configs/demo', spec.config))]])
def test_data_options_reach_every_run(row):
    """6 classes and 96-px images: every dataset's classes, every head of teacher and student, every resize."""
    config = 'configs/demo/' + (det_study.TEACHER if row == 'teacher' else det_study.ROWS[row].config)
    names = SHAPE_CLASSES[:6]
    cfg = _merged(config, det_study.class_options(config, names, 96))
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert tuple(cfg[loader].dataset.metainfo.classes) == names
        assert [t['scale'] for t in cfg[loader].dataset.pipeline if t['type'] == 'Resize'] == [(96, 96)]
    heads = [m.roi_head.bbox_head for m in ((cfg.model.architecture, cfg.model.teacher)
                                            if 'architecture' in cfg.model else (cfg.model,))]
    assert [h.num_classes for h in heads] == [6] * len(heads)
    assert 4 not in _num_classes(cfg.model)  # nothing left at the configs' 4 classes


def test_the_teacher_and_its_students_depend_on_the_data_options(tmp_path):
    base = ['--rows', 'baseline', 'kd', '--seeds', '0', '--work-dir', str(tmp_path / 'wd'),
            '--data-root', str(tmp_path / 'data')]
    keys = {}
    for n in (4, 6):
        args = det_study.parse_args(base + ['--num-classes', str(n)])
        jobs = {job.id: job for job in det_study.jobs(args, det_study.data_options(args), f'digest{n}')}
        assert jobs['kd', 0].needs == ('teacher', 0) and jobs['baseline', 0].needs is None
        assert jobs['kd', 0].key['teacher'] == jobs['teacher', 0].key  # a retrained teacher retrains its students
        assert f'model.teacher_ckpt={tmp_path}/wd/teacher/iter_1500.pth' in jobs['kd', 0].cmd
        keys[n] = jobs['teacher', 0].key
        assert f'model.roi_head.bbox_head.num_classes={n}' in jobs['teacher', 0].cmd
    assert keys[4] != keys[6] and keys[4]['data'] == 'digest4'


def test_the_teacher_trains_as_a_distributed_run_of_teacher_procs_processes(tmp_path):
    """--teacher-procs 2 (the default): what tools/dist_train.sh runs (torch.distributed.run + --launcher pytorch),
    taking 2 of the runner's places; --teacher-procs 1: a plain tools/train.py run. The students stay 1-process."""
    base = ['--rows', 'kd', '--seeds', '0', '--work-dir', str(tmp_path / 'wd'), '--data-root', str(tmp_path / 'd')]
    for procs, argv in ((2, []), (2, ['--teacher-procs', '2']), (1, ['--teacher-procs', '1'])):
        args = det_study.parse_args(base + argv)
        jobs = {job.id: job for job in det_study.jobs(args, det_study.data_options(args), 'digest')}
        teacher, kd = jobs['teacher', 0], jobs['kd', 0]
        assert teacher.slots == procs and kd.slots == 1 and kd.cmd[1] == 'tools/train.py'
        t = teacher.cmd.index('tools/train.py')
        if procs == 1:
            assert t == 1 and '--launcher' not in teacher.cmd
        else:
            assert teacher.cmd[1:t] == ['-m', 'torch.distributed.run', '--standalone', '--nproc-per-node=2']
            assert teacher.cmd[t + 1:t + 4] == [f'{det_study.CONFIG_DIR}/{det_study.TEACHER}', '--launcher', 'pytorch']
        assert teacher.cmd[1:] == teacher.key['cmd']  # a teacher of another process count is another teacher


def test_schedule_options_scale_milestones_validation_and_checkpoint():
    config = 'configs/demo/faster_rcnn_r18_baseline.py'
    cfg = _merged(config, det_study.schedule_options(config, 600))
    base = Config.fromfile(osp.join(REPO, config))
    old = base.train_cfg.max_iters
    assert cfg.train_cfg.max_iters == 600 and cfg.default_hooks.checkpoint.interval == 600
    assert cfg.train_cfg.val_interval == 600 // 4
    multistep = [i for i, s in enumerate(cfg.param_scheduler) if s['type'] == 'MultiStepLR'][0]
    assert cfg.param_scheduler[multistep]['milestones'] == [int(m * 600 / old)
                                                            for m in base.param_scheduler[multistep]['milestones']]
    assert cfg.param_scheduler[multistep]['end'] == 600 and cfg.param_scheduler[multistep]['type'] == 'MultiStepLR'
    assert det_study.schedule_options(config, None) == []


def _record(row, seed, curve):
    return dict(method=row, seed=seed, metric=curve[-1][1], seconds=10.0,
                metrics={'coco/bbox_mAP': curve[-1][1], 'coco/bbox_mAP_50': 2 * curve[-1][1]},
                history=[{'step': s, 'coco/bbox_mAP': v} for s, v in curve])


def test_table_pairs_every_delta_by_seed_and_lists_missing_and_failed_runs():
    teacher = _record('teacher', 0, [(100, 0.2), (300, 0.5), (400, 0.52)])
    alone = {0: 0.305, 1: 0.315, 2: 0.325}
    rows = {'baseline': [_record('baseline', s, [(25, 0.1), (75, v - 0.005), (100, v)]) for s, v in alone.items()],
            'kd': [_record('kd', s, [(25, 0.1), (75, 0.3), (100, v)]) for s, v in ((0, 0.33), (1, 0.35), (2, 0.34))],
            'nd': [_record('nd', s, [(25, 0.1), (100, v)]) for s, v in ((0, 0.36), (1, 0.40))]}
    failures = [dict(method='nd', seed=2, log='/x/nd/seed2/train.log', error='exit code 1; see /x/nd/seed2/train.log')]
    text = det_study.table(teacher, rows, [0, 1, 2], failures)
    lines = {line.split('|')[1].strip(): [c.strip() for c in line.split('|')[2:-1]]
             for line in text.splitlines()[2:] if line.startswith('| ')}
    t = lines['teacher R50-FPN (seed 0)']
    assert t[0] == '0.520' and t[3] == '1' and t[8] == '0.020'
    base = lines['student R18-FPN alone']
    assert base[:5] == ['0.305', '0.315', '0.325', '3', '0.315 ± 0.010']
    assert base[5:7] == ['', ''] and base[8] == '0.005'
    kd = lines['KD (RoI logits)']
    # kd - alone per seed: 0.025, 0.035, 0.015 -> mean 0.025, sd 0.01, se 0.01 / sqrt(3) = 0.00577
    assert kd[3:6] == ['3', '0.340 ± 0.010', '+0.025 ± 0.006 (n=3)'] and kd[6] == ''  # its base is the student alone
    nd = lines['KD++ (ND + KD)']
    # seed 2 failed: listed, never averaged over; std of (0.36, 0.40) = 0.0283
    assert nd[:4] == ['0.360', '0.400', 'FAILED', '2'] and nd[4] == '0.380 ± 0.028'
    # nd - alone at seeds 0, 1: 0.055, 0.085 -> mean 0.070, sd 0.0212, se 0.015; nd - kd: 0.03, 0.05 -> 0.040, se 0.010
    assert nd[5] == '+0.070 ± 0.015 (n=2, seed 2 missing)'
    assert nd[6] == '+0.040 ± 0.010 (n=2, seed 2 missing) vs KD (RoI logits)'
    assert 'KD++ (ND + KD) (`nd`) seed 2: exit code 1' in text and '(log: /x/nd/seed2/train.log)' in text
    assert det_study.last_quarter_change(rows['kd']) == pytest.approx(0.04)
    assert 'missing' in det_study.table(None, dict(rows, kd=rows['kd'][:2]), [0, 1, 2]).split('KD (RoI logits)')[1]
    # a well-formed markdown table: the separator and every row (a failed teacher's too) have the header's columns
    teacher_failed = [dict(method='teacher', seed=0, log='/x/t.log', error='exit code 1')]
    for seeds, out in (([0, 1, 2], text), ([0], det_study.table(None, rows, [0], teacher_failed))):
        table_lines = [line for line in out.splitlines() if line.startswith('|')]
        assert len({line.count('|') for line in table_lines}) == 1, table_lines
        assert table_lines[0].count('|') == len(seeds) + 9  # row, the seeds and 7 more columns


def test_ranking_says_how_each_seed_alone_orders_the_rows():
    rows = {row: [_record(row, s, [(100, v)]) for s, v in enumerate(values)]
            for row, values in (('baseline', (0.20, 0.21, 0.19)), ('kd', (0.19, 0.30, 0.28)),
                                ('reviewkd', (0.35, 0.33, 0.34)), ('nd_nokd', (0.22, 0.23)))}
    text = det_study.ranking(rows, [0, 1, 2], subsets={'the demo rows': ['baseline', 'kd']})
    lines = text.splitlines()
    assert lines[0] == ('Ranking of all rows by mean over seeds 0, 1, 2 (left out, a seed missing: ND alone): '
                        'ReviewKD > KD (RoI logits) > student R18-FPN alone.')
    # kd - alone: -0.01, 0.09, 0.09 -> +0.057 ± 0.033, not separated by 2 SE
    assert lines[1] == ('- seed 0 alone: Kendall tau +0.33, against the means: KD (RoI logits) below student R18-FPN '
                        'alone (paired Δ +0.057 ± 0.033 (n=3)); of these, separated by more than 2 SE: none')
    assert lines[2] == '- seed 1 alone: Kendall tau +1.00, the same order'
    demo = text.split('Ranking of the demo rows')[1].splitlines()
    assert demo[1].startswith('- seed 0 alone: Kendall tau -1.00, against the means: KD (RoI logits) below student')
    assert det_study.ranking(rows, [0]) == ''  # one seed ranks nothing against itself


def test_bad_arguments_stop_at_once(capsys):
    out = subprocess.run([sys.executable, 'tools/analysis/det_study.py', '--jobs', '0'], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and '--jobs must be >= 1' in out.stderr, out.stderr  # the command line
    too_many = [x for i in range(5) for x in ('--variant', f'w{i}', 'nd', f'a={i}')]
    for argv, message in ((['--eval-on', 'heldout', '--num-heldout', '0'], 'num-heldout'),
                          (['--jobs', '0'], '--jobs must be >= 1'), (['--rows', 'nope'], 'invalid choice'),
                          (['--num-classes', '13'], '--num-classes must be in [2, 12]'),
                          (['--variant', 'kd', 'nd', 'a=1'], 'the name is taken'),
                          (['--variant', 'x', 'nd', 'no_equals'], 'expected NAME ROW KEY=VALUE'),
                          (['--rows', 'nd', '--seeds', '0', '--eval-on', 'heldout', *too_many], 'at most 4 values'),
                          (['--rows', 'nd', '--eval-on', 'heldout', *too_many[:4]], 'at one seed')):
        with pytest.raises(SystemExit) as e:
            det_study.parse_args(argv)
        err = capsys.readouterr().err
        assert e.value.code == 2 and message in err, (argv, err)


@pytest.fixture(scope='module')
def six_class_study(tmp_path_factory):
    """A tiny study on 6 generated classes: the teacher, the student alone, KD and a variant that cannot build."""
    tmp = tmp_path_factory.mktemp('det_study6')
    cmd = [sys.executable, 'tools/analysis/det_study.py', '--work-dir', str(tmp / 'wd'), '--data-root',
           str(tmp / 'data'), '--num-classes', '6', '--data-seed', '1', '--num-train', '8', '--num-heldout', '0',
           '--num-val', '4', '--rows', 'baseline', 'kd', '--variant', 'broken', 'baseline', 'model.backbone.depth=7',
           '--seeds', '0', '--teacher-iters', '2', '--student-iters', '2']
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900,
                          env=dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1'))
    return tmp / 'wd', proc


def test_a_failed_run_is_listed_and_the_others_finish(six_class_study):
    wd, proc = six_class_study
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    table = (wd / 'results.md').read_text()
    assert table in proc.stdout and 'run(s) failed' in proc.stderr
    records = [json.loads(line) for line in (wd / 'results.jsonl').read_text().splitlines()]
    assert [(r['method'], r['seed']) for r in records] == [('teacher', 0), ('baseline', 0), ('kd', 0)]
    assert f'seed 0: exit code 1; see {wd}/broken/seed0/train.log' in table
    broken = [line for line in table.splitlines() if line.startswith('| student R18-FPN alone, tuned:')]
    assert len(broken) == 1 and '| FAILED | 0 |' in broken[0]


def test_a_six_class_study_trains_and_evaluates_six_classes(six_class_study):
    wd, proc = six_class_study
    names = SHAPE_CLASSES[:6]
    records = {r['method']: r for r in map(json.loads, (wd / 'results.jsonl').read_text().splitlines())}
    assert set(records) == {'teacher', 'baseline', 'kd'}, proc.stdout[-3000:]
    for method, run_dir in (('teacher', wd / 'teacher'), ('baseline', wd / 'baseline' / 'seed0'),
                            ('kd', wd / 'kd' / 'seed0')):
        # the evaluator reported every one of the 6 classes
        per_class = {k[len('coco/'):-len('_precision')] for k in records[method]['metrics'] if k.endswith('_precision')}
        assert per_class == set(names), (method, per_class)
        dumped = [p for p in os.listdir(run_dir) if p.endswith('.py')]
        cfg = Config.fromfile(str(run_dir / dumped[0]))
        models = (cfg.model.architecture, cfg.model.teacher) if method == 'kd' else (cfg.model,)
        assert [m.roi_head.bbox_head.num_classes for m in models] == [6] * len(models)
        for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
            assert tuple(cfg[loader].dataset.metainfo.classes) == names
    assert '6 shape classes' in (wd / 'results.md').read_text()


def test_the_tuning_log_keeps_earlier_tuning_runs(tmp_path):
    """--eval-on heldout: results.jsonl is the tuning log; a later call keeps the runs of the earlier ones."""
    wd = tmp_path / 'tune'
    wd.mkdir()
    earlier = dict(study='det', method='nd_w2', seed=0, metric_name='coco/bbox_mAP', metric=0.3, seconds=1.0,
                   metrics={}, history=[])
    (wd / 'results.jsonl').write_text(json.dumps(earlier) + '\n')
    result = det_study.main(['--rows', 'baseline', '--seeds', '0', '--eval-on', 'heldout', '--report',
                             '--work-dir', str(wd), '--data-root', str(tmp_path / 'data')])
    assert result['rows'] == {} and result['failures'] == []
    assert [json.loads(line) for line in (wd / 'results.jsonl').read_text().splitlines()] == [earlier]
    assert 'held-out training images' in (wd / 'results.md').read_text()


def test_a_report_without_the_work_dirs_keeps_the_results_it_cannot_see(tmp_path, capsys):
    """--report (or a study of fewer rows) where the runs' work dirs are gone, e.g. on a committed log folder: the
    finished runs in results.jsonl stay there (a run is replaced only by a newer record of itself)."""
    out = tmp_path / 'log'
    out.mkdir()
    runs = [dict(study='det', method=m, seed=s, metric_name='coco/bbox_mAP', metric=0.1 * s, seconds=1.0, metrics={},
                 history=[]) for m, s in (('teacher', 0), ('baseline', 0), ('baseline', 1), ('kd', 0))]
    (out / 'results.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in runs))
    result = det_study.main(['--rows', 'baseline', 'kd', '--seeds', '0', '1', '--report', '--out', str(out),
                             '--work-dir', str(tmp_path / 'gone'), '--data-root', str(tmp_path / 'data')])
    assert result['rows'] == {} and result['teacher'] is None
    assert [json.loads(line) for line in (out / 'results.jsonl').read_text().splitlines()] == runs
    assert '4 earlier record(s) of runs this call has none for' in capsys.readouterr().out
