"""The dense study (``det_study.py --family gfl``): its rows and seeds fixed in code, every row's config taking the
study's data options and building, the runs it schedules, the teacher tuned on the held-out split
(tools/analysis/tune_teacher.py --family gfl), and a tiny end-to-end study that a second call resumes from."""
import argparse
import importlib.util
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
from mmengine.config import Config, DictAction
from mmengine.registry import DefaultScope

from mmkd.analysis import det_study
from mmkd.datasets.synthetic import SHAPE_CLASSES
from mmkd.registry import MODELS

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DENSE = ['baseline', 'ld', 'pkd', 'cwd', 'fgd', 'crosskd', 'crosskd_pkd', 'nd', 'icd']


def _merged(config: str, opts: list) -> Config:
    """``config`` with ``opts`` merged as tools/train.py merges --cfg-options."""
    cfg = Config.fromfile(osp.join(REPO, config))
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    cfg.merge_from_dict(parser.parse_args(['--cfg-options', *opts]).cfg_options)
    return cfg


def test_the_dense_rows_and_seeds_are_fixed_and_the_faster_rcnn_study_is_unchanged(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = det_study.parse_args(['--family', 'gfl'])
    assert args.rows == DENSE and args.seeds == [0, 1, 2]
    assert args.work_dir == str(tmp_path / 'work_dirs' / 'dense_study')
    assert args.teacher_dir == str(tmp_path / 'work_dirs' / 'dense_study' / 'teacher')
    assert args.data_root == str(tmp_path / 'data' / 'synthetic_coco')  # the Faster R-CNN study's data
    tuning = det_study.parse_args(['--family', 'gfl', '--rows', 'baseline', '--eval-on', 'heldout'])
    assert tuning.work_dir == str(tmp_path / 'work_dirs' / 'dense_study_heldout')
    assert tuning.teacher_dir == args.teacher_dir
    # every method against the student alone; CrossKD + PKD also against CrossKD, the row it adds to
    assert {r: det_study.row_spec(args, r)[2] for r in DENSE} == dict(
        {r: 'baseline' for r in DENSE[1:]}, baseline=None, crosskd_pkd='crosskd')
    assert det_study.row_spec(args, 'nd')[1] == 'ND-dense [PROPOSAL]'
    frcnn = det_study.parse_args([])
    assert frcnn.rows == det_study.STUDY_ROWS and frcnn.work_dir == str(tmp_path / 'work_dirs' / 'det_study')
    assert det_study.row_spec(frcnn, 'nd')[0] == 'faster_rcnn_r50_r18_nd.py'  # a name both families have
    for argv, message in ((['--family', 'gfl', '--rows', 'kd'], 'not a row of --family gfl'),
                          (['--rows', 'crosskd'], 'not a row of --family faster_rcnn'),
                          (['--family', 'gfl', '--variant', 'x', 'reviewkd', 'a=1'], 'expected NAME ROW KEY=VALUE'),
                          (['--family', 'gfl', '--variant', 'ld', 'nd', 'a=1'], 'the name is taken'),
                          (['--family', 'gfl', '--teacher-config', 'gfl_r50.py'], 'not a config in configs/demo')):
        with pytest.raises(SystemExit) as e:
            det_study.parse_args(argv)
        err = capsys.readouterr().err
        assert e.value.code == 2 and message in err, (argv, err)


def test_teacher_config_trains_another_teacher_that_the_students_distil_from(tmp_path):
    """--teacher-config: make demo's short GFL teacher (its backbone from a checkpoint, part of the run's
    options) in place of the study's; the students' teacher_ckpt follows its schedule, its label names it, and
    ``teacher_init`` (a record of the run it starts from) enters its key and so the students'."""
    argv = ['--family', 'gfl', '--rows', 'crosskd', '--seeds', '0', '--work-dir', str(tmp_path / 'wd'),
            '--teacher-config', 'gfl_r50_teacher_demo.py']
    args = det_study.parse_args(argv)
    teacher, crosskd = det_study.jobs(args, det_study.data_options(args), 'digest')
    assert f'{det_study.CONFIG_DIR}/gfl_r50_teacher_demo.py' in teacher.cmd and 'init' not in teacher.key
    assert teacher.info['label'] == det_study.teacher_label(args) == 'teacher GFL R50-FPN (gfl_r50_teacher_demo.py)'
    iters = det_study.load_config(f'{det_study.CONFIG_DIR}/gfl_r50_teacher_demo.py').train_cfg.max_iters
    assert iters < det_study.load_config(f'{det_study.CONFIG_DIR}/gfl_r50_teacher.py').train_cfg.max_iters
    assert det_study.teacher_checkpoint(args) == str(tmp_path / 'wd' / 'teacher' / f'iter_{iters}.pth')
    assert f'model.teacher_ckpt={det_study.teacher_checkpoint(args)}' in crosskd.cmd
    init = dict(key={'cmd': ['x']}, finished_at='2026-12-07T00:00:00+00:00')
    again = det_study.parse_args(argv, dict(teacher_init=init))
    teacher2, crosskd2 = det_study.jobs(again, det_study.data_options(again), 'digest')
    assert teacher2.key == dict(teacher.key, init=init) and crosskd2.key['teacher'] == teacher2.key
    assert crosskd2.key != crosskd.key
    # the config starts its backbone from the Faster R-CNN teacher's (what make demo passes), the rest from scratch
    cfg = _merged(f'{det_study.CONFIG_DIR}/gfl_r50_teacher_demo.py', ['model.backbone.init_cfg.checkpoint=t.pth'])
    assert cfg.model.backbone.init_cfg == dict(type='Pretrained', prefix='backbone.', checkpoint='t.pth')
    assert cfg.model.neck.get('init_cfg') is None and cfg.train_cfg.max_iters == iters


@pytest.mark.parametrize('row', ['teacher', *DENSE])
def test_every_dense_row_takes_the_data_options_and_builds(row):
    """6 classes and 96-px images reach every dataset, both detectors' heads and every resize; the model builds
    (a random teacher: the study passes its trained checkpoint)."""
    config = 'configs/demo/' + (det_study.DENSE_TEACHER if row == 'teacher' else det_study.DENSE_ROWS[row].config)
    names = SHAPE_CLASSES[:6]
    cfg = _merged(config, det_study.class_options(config, names, 96) + det_study.schedule_options(config, 40))
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert tuple(cfg[loader].dataset.metainfo.classes) == names
        assert [t['scale'] for t in cfg[loader].dataset.pipeline if t['type'] == 'Resize'] == [(96, 96)]
    distilled = 'architecture' in cfg.model
    heads = [m.bbox_head for m in ((cfg.model.architecture, cfg.model.teacher) if distilled else (cfg.model, ))]
    assert [(h.type, h.num_classes) for h in heads] == [('GFLHead', 6)] * len(heads)
    assert cfg.train_cfg.max_iters == 40 and cfg.default_hooks.checkpoint.interval == 40
    model_cfg = cfg.model.to_dict()
    if distilled:
        model_cfg.update(teacher_ckpt=None, allow_random_teacher=True)
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(model_cfg)
    student = model.student if distilled else model
    assert type(student).__name__ == 'GFL' and student.bbox_head.cls_out_channels == 6
    assert student.backbone.depth == (50 if row == 'teacher' else 18)


def test_the_dense_students_need_the_gfl_teacher(tmp_path):
    args = det_study.parse_args(['--family', 'gfl', '--seeds', '0', '1', '--work-dir', str(tmp_path / 'wd'),
                                 '--data-root', str(tmp_path / 'd')])
    jobs = {job.id: job for job in det_study.jobs(args, det_study.data_options(args), 'digest')}
    assert list(jobs)[0] == ('teacher', 0) and len(jobs) == 1 + 9 * 2
    # seed by seed: an interrupted study has every row at its first seeds
    assert [j[0] for j in list(jobs)[1:10]] == DENSE and {j[1] for j in list(jobs)[1:10]} == {0}
    teacher = jobs['teacher', 0]
    iters = det_study.load_config(f'{det_study.CONFIG_DIR}/gfl_r50_teacher.py').train_cfg.max_iters
    assert f'{det_study.CONFIG_DIR}/gfl_r50_teacher.py' in teacher.cmd and teacher.info['study'] == 'dense'
    assert jobs['baseline', 0].needs is None and 'model.teacher_ckpt' not in ' '.join(jobs['baseline', 0].cmd)
    for row in DENSE[1:]:
        job = jobs[row, 1]
        assert job.needs == ('teacher', 0) and job.key['teacher'] == teacher.key
        assert f'model.teacher_ckpt={tmp_path}/wd/teacher/iter_{iters}.pth' in job.cmd
        assert f'{det_study.CONFIG_DIR}/{det_study.DENSE_ROWS[row].config}' in job.cmd
        assert 'randomness.seed=1' in job.cmd and job.info['study'] == 'dense'


def test_the_dense_teacher_is_tuned_on_the_heldout_images(tmp_path):
    spec = importlib.util.spec_from_file_location('tune_teacher', osp.join(REPO, 'tools/analysis/tune_teacher.py'))
    tune_teacher = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tune_teacher)
    sargs = tune_teacher.study_args(3000, [], str(tmp_path), 'gfl')
    assert (sargs.family, sargs.eval_on, sargs.rows, sargs.teacher_iters) == ('gfl', 'heldout', [], 3000)
    data = det_study.data_options(sargs)
    job = tune_teacher.teacher_job(sargs, data)
    assert job.method == 'teacher_3000' and job.work_dir == osp.join(str(tmp_path), 'heldout_t3000', 'teacher')
    assert f'{det_study.CONFIG_DIR}/gfl_r50_teacher.py' in job.cmd and 'train_cfg.max_iters=3000' in job.cmd
    heldout = [o for o in data['heldout'] if o.startswith('val_evaluator.ann_file=')]
    val = [o for o in data['val'] if o.startswith('val_evaluator.ann_file=')]
    assert heldout[0].endswith('instances_heldout_2000_400.json') and heldout[0] in job.cmd and val[0] not in job.cmd
    # another setting of the teacher (--tag): its own work dir and record, its options in the command
    sargs = tune_teacher.study_args(1500, ['--teacher-cfg-options', 'optim_wrapper.optimizer.lr=4e-3'], str(tmp_path),
                                    'gfl', 'lr4e-3')
    job = tune_teacher.teacher_job(sargs, data, 'lr4e-3')
    assert job.method == 'teacher_1500_lr4e-3' and job.work_dir == osp.join(str(tmp_path), 'heldout_t1500_lr4e-3',
                                                                           'teacher')
    assert job.cmd[-2:] == ['optim_wrapper.optimizer.lr=4e-3', 'randomness.seed=0']


@pytest.fixture(scope='module')
def tiny_dense_study(tmp_path_factory):
    """A 1-iteration dense study on 4 training images: the teacher, the student alone and ND-dense (its class
    means pass), run twice; the second call must train nothing. An untrained GFL scores every prior about 0.01,
    under the configs' score_thr of 0.05: no detection, no mAP; so the runs keep every score (the students as
    variants of their rows)."""
    tmp = tmp_path_factory.mktemp('dense_study')
    cmd = [sys.executable, 'tools/analysis/det_study.py', '--family', 'gfl', '--work-dir', str(tmp / 'wd'),
           '--data-root', str(tmp / 'data'), '--num-train', '4', '--num-heldout', '0', '--num-val', '2',
           '--rows', '--variant', 'alone', 'baseline', 'model.test_cfg.score_thr=0', '--variant', 'nd0', 'nd',
           'model.architecture.test_cfg.score_thr=0', '--teacher-cfg-options', 'model.test_cfg.score_thr=0',
           '--seeds', '0', '--teacher-iters', '1', '--student-iters', '1', '--teacher-procs', '1', '--jobs', '2']
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    first = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
    records = (tmp / 'wd' / 'results.jsonl').read_text() if first.returncode == 0 else ''
    second = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
    return tmp / 'wd', first, records, second


def test_a_tiny_dense_study_runs_end_to_end(tiny_dense_study):
    wd, first, _, _ = tiny_dense_study
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    records = [json.loads(line) for line in (wd / 'results.jsonl').read_text().splitlines()]
    assert [(r['study'], r['method'], r['seed']) for r in records] == [
        ('dense', 'teacher', 0), ('dense', 'alone', 0), ('dense', 'nd0', 0)]
    for r in records:
        assert 0.0 <= r['metric'] <= 1.0 and r['history'][-1]['step'] == 1
    dumped = [p for p in os.listdir(wd / 'nd0' / 'seed0') if p.endswith('.py')]
    cfg = Config.fromfile(str(wd / 'nd0' / 'seed0' / dumped[0]))
    assert cfg.model.type == 'DenseDistill' and cfg.model.teacher_ckpt == str(wd / 'teacher' / 'iter_1.pth')
    table = (wd / 'results.md').read_text()
    assert table.startswith('# Dense detection study (GFL) on synthetic shapes')
    rows = [line.split('|')[1].strip() for line in table.splitlines() if line.startswith('| ')][1:]
    assert rows == ['teacher GFL R50-FPN (seed 0)', 'student GFL R18-FPN alone, tuned: model.test_cfg.score_thr=0',
                    'ND-dense [PROPOSAL], tuned: model.architecture.test_cfg.score_thr=0']
    # the pictures of the study (plot_study.py): named after the study
    proc = subprocess.run([sys.executable, 'tools/analysis/plot_study.py', str(wd)], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (wd / 'dense_metric.png').is_file() and (wd / 'dense_val_curves.png').is_file()


def test_a_second_call_reuses_the_finished_runs(tiny_dense_study):
    wd, first, records, second = tiny_dense_study
    assert first.returncode == 0 and second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert 'training (log:' in first.stdout and 'training (log:' not in second.stdout
    assert second.stdout.count('done before') == 3
    # the same runs, the same records (each run once: not appended a second time)
    assert (wd / 'results.jsonl').read_text() == records
