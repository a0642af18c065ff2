"""``tools/analysis/cls_study.py`` (mmkd.analysis.cls_study): a tiny end-to-end study (train, resume, summarise),
``--dry-run`` and the paired summary statistics."""
import json
import math
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest

from mmkd.analysis import cls_study

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SCRIPT = osp.join(REPO, 'tools', 'analysis', 'cls_study.py')
# the configs' schedules (the study's default epochs)
T_EPOCHS = cls_study.max_epochs(f'{cls_study.CONFIG_DIR}/{cls_study.TEACHER}', None)
S_EPOCHS = cls_study.max_epochs(f'{cls_study.CONFIG_DIR}/{cls_study.METHODS["baseline"]}', None)
TINY = ['--num-train', '64', '--num-test', '32', '--epochs', '2', '--teacher-epochs', '1', '--seeds', '0',
        '--methods', 'baseline', 'kd', '--threads', '1']


def _study(*args: str, rc: int = 0) -> str:
    proc = subprocess.run([sys.executable, SCRIPT, *args], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1'))
    assert proc.returncode == rc, proc.stdout[-4000:] + proc.stderr[-4000:]
    return proc.stdout


def test_tiny_study_trains_summarises_and_resumes(tmp_path):
    work_dir = tmp_path / 'study'
    # a variant that cannot build fails alone: listed with its log, the others finish, the exit status is 1
    out = _study('--work-dir', str(work_dir), *TINY, '--variant', 'broken', 'kd', 'model.distiller.type=Nope', rc=1)
    assert out.count(': training (log: ') == 4  # teacher, baseline seed 0, kd seed 0, broken seed 0
    failures = json.loads((work_dir / 'results.json').read_text())['failures']
    assert [(f['method'], f['seed']) for f in failures] == [('broken', 0)]
    assert f'- broken seed 0: exit code 1; see {work_dir}/broken_seed0/train.log' in out
    assert '| broken | kd_res20_res8_synthetic.py model.distiller.type=Nope | FAILED | 0 | n/a |' in out
    out = _study('--work-dir', str(work_dir), *TINY)  # the finished runs are reused
    assert ': training' not in out and out.count('done before') == 3
    results = json.loads((work_dir / 'results.json').read_text())
    assert list(results['methods']) == ['baseline', 'kd'] and results['seeds'] == [0]
    assert 0 <= results['teacher']['top1'] <= 100 and results['teacher']['wall_s'] > 0
    for method, r in results['methods'].items():
        assert len(r['top1']) == 1 and 0 <= r['top1'][0] <= 100 and math.isfinite(r['mean'])
        assert r['std'] is None  # one seed: no sample std
        assert r['delta'] == pytest.approx(r['mean'] - results['methods']['baseline']['mean'])
        assert r['wall_s'][0] > 0
        assert (work_dir / f'{method}_seed0' / 'epoch_2.pth').is_file()
        # 2 epochs, --validations 4: validated after each; the plateau check is final - epoch 1 (closest to 75%)
        run = next(run for run in map(json.loads, (work_dir / 'results.jsonl').read_text().splitlines())
                   if run['method'] == method)
        top1 = [h['accuracy/top1'] for h in run['history']]
        assert r['last_quarter'] == pytest.approx(top1[1] - top1[0])
    assert results['teacher']['last_quarter'] is None  # one validation: no plateau check
    table = (work_dir / 'results.md').read_text()
    for row in ('| teacher (seed 0) | res20_teacher_synthetic.py |', '| baseline | res8_baseline_synthetic.py |',
                '| kd | kd_res20_res8_synthetic.py |'):
        assert row in table
    assert '| +0.00 (n=1) |' in table and 'Command: `' in table and '1 torch threads per run' in table
    assert table in out  # printed too
    runs = [json.loads(line) for line in (work_dir / 'results.jsonl').read_text().splitlines()]  # for plot_study
    assert [(r['study'], r['method'], r['seed']) for r in runs] == [('cls', 'teacher', 0), ('cls', 'baseline', 0),
                                                                     ('cls', 'kd', 0)]
    for r in runs:  # the validation history (plot_study's curves), NC metrics and final metrics come with each run
        steps = [1] if r['method'] == 'teacher' else [1, 2]
        assert [h['step'] for h in r['history']] == steps and r['history'][-1]['accuracy/top1'] == r['metric']
        assert r['metrics']['accuracy/top1'] == r['metric'] and 'accuracy/top5' in r['metrics']
        # DistillMetricsHook in every study config (too few images per class here for NC1-NC3, not for its top-1)
        assert all('nc/student_top1' in h and 'nc/probe_samples' in h for h in r['history'])
        assert ('distill/top1_agreement' in r['metrics']) == (r['method'] == 'kd')

    # a second call finds every run finished and trains nothing
    again = _study('--work-dir', str(work_dir), *TINY)
    assert ': training' not in again and again.count('done before') == 3
    assert json.loads((work_dir / 'results.json').read_text())['methods'] == results['methods']


def test_dry_run_lists_the_commands(tmp_path):
    work_dir = tmp_path / 'dry'
    out = _study('--work-dir', str(work_dir), '--seeds', '0', '1', '--methods', 'baseline', 'kdpp', 'icd',
                 '--dry-run')
    lines = out.strip().splitlines()
    assert len(lines) == 1 + 3 * 2 and not work_dir.exists()  # nothing generated nor trained
    assert 'configs/cls/synthetic/res20_teacher_synthetic.py' in lines[0] and 'teacher_ckpt' not in lines[0]
    assert f'train_cfg.val_interval={max(1, T_EPOCHS // 4)}' in lines[0]  # 4 validations
    ckpt = f'model.teacher_ckpt={work_dir}/teacher/epoch_{T_EPOCHS}.pth'
    cases = [(m, c, s) for m, c in (('baseline', 'res8_baseline'), ('kdpp', 'kdpp_res20_res8'),
                                    ('icd', 'icd_res20_res8')) for s in (0, 1)]
    for i, (line, (method, config, seed)) in enumerate(zip(lines[1:], cases), 2):
        assert line.startswith(f'[{i}/7] {method} seed {seed}: tools/train.py configs/cls/synthetic/'
                               f'{config}_synthetic.py --work-dir {work_dir}/{method}_seed{seed}')
        assert f'randomness.seed={seed}' in line and f'dataset.data_root={work_dir}/data' in line
        assert (ckpt in line) == (method != 'baseline')
        assert 'max_epochs' not in line  # no --epochs: the configs' schedules, validated 4 times
        assert f'train_cfg.val_interval={max(1, S_EPOCHS // 4)}' in line
        assert 'randomness.deterministic' not in line
    again = _study('--work-dir', str(work_dir), '--seeds', '0', '--methods', 'kdpp', '--dry-run', '--deterministic')
    assert all(line.endswith('randomness.deterministic=True') or 'randomness.deterministic=True ' in line
               for line in again.strip().splitlines())


def test_variants_add_rows_with_their_options(tmp_path, capsys):
    work_dir = tmp_path / 'dry'
    opt = 'model.distiller.distill_losses.loss_nc.loss_weight=0.1'
    out = _study('--work-dir', str(work_dir), '--seeds', '3', '--methods', 'baseline', '--variant', 'nc_w0.1', 'nc',
                 opt, '--variant', 'base_lr', 'baseline', 'optim_wrapper.optimizer.lr=0.2', '--dry-run')
    lines = out.strip().splitlines()
    assert len(lines) == 4
    assert lines[2].startswith('[3/4] nc_w0.1 seed 3: tools/train.py configs/cls/synthetic/nc_res20_res8_synthetic.py '
                               f'--work-dir {work_dir}/nc_w0.1_seed3')
    assert lines[2].endswith(opt) and 'model.teacher_ckpt=' in lines[2]
    assert lines[3].endswith('optim_wrapper.optimizer.lr=0.2') and 'teacher_ckpt' not in lines[3]  # student alone
    for bad in (['x', 'nope', 'a=1'], ['x', 'nc'], ['x', 'nc', 'no_equals'], ['baseline', 'nc', 'a=1']):
        with pytest.raises(SystemExit) as e:
            cls_study.parse_args(['--methods', 'baseline', '--variant', *bad, '--dry-run'])
        assert e.value.code == 2 and '--variant' in capsys.readouterr().err


def test_a_study_of_the_student_alone_trains_no_teacher(tmp_path):
    out = _study('--work-dir', str(tmp_path / 'alone'), '--seeds', '0', '1', '--methods', 'baseline', '--eval-on',
                 'heldout', '--epochs', '8', '--dry-run')
    lines = out.strip().splitlines()
    assert len(lines) == 2 and all(' baseline seed ' in line for line in lines)
    assert all('train_cfg.max_epochs=8' in line and 'train_cfg.val_interval=2' in line for line in lines)


def test_teacher_dir_reuses_a_teacher_from_another_study(tmp_path):
    work_dir, teacher_dir = tmp_path / 'longer', tmp_path / 'first' / 'teacher'
    out = _study('--work-dir', str(work_dir), '--teacher-dir', str(teacher_dir), '--seeds', '0', '--methods',
                 'kd', '--dry-run')
    lines = out.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith('[1/2] teacher seed 0: tools/train.py configs/cls/synthetic/res20_teacher_synthetic.py '
                               f'--work-dir {teacher_dir} ')
    assert f'--work-dir {work_dir}/kd_seed0 ' in lines[1]
    assert f'model.teacher_ckpt={teacher_dir}/epoch_{T_EPOCHS}.pth' in lines[1]


def test_summary_statistics_and_final_top1(tmp_path):
    study = cls_study
    values = dict(baseline={0: 50.0, 1: 52.0, 2: 57.0}, kd={0: 55.0, 1: 54.0, 2: 59.5}, nc={1: 40.0})
    stats = study.summarise(values, [0, 1, 2])
    for method, v in values.items():
        assert stats[method]['mean'] == pytest.approx(np.mean(list(v.values())))
    # paired: kd - baseline per seed = 5, 2, 2.5 -> mean 3.1667, sample sd 1.6073, se = sd / sqrt(3) = 0.9280
    assert stats['kd']['delta'] == pytest.approx(19 / 6) and stats['kd']['delta_se'] == pytest.approx(0.92796, abs=1e-5)
    assert stats['kd']['delta_n'] == 3 and stats['kd']['delta_text'] == '+3.17 ± 0.93 (n=3)'
    # nc has seed 1 only: its Δ is at seed 1 (40 - 52), never against the baseline's mean over all seeds
    assert stats['nc']['delta'] == pytest.approx(-12.0) and stats['nc']['delta_se'] is None
    assert stats['nc']['missing'] == [0, 2] and stats['nc']['delta_text'] == '-12.00 (n=1, seeds 0, 2 missing)'
    assert stats['kd']['std'] == pytest.approx(np.std(list(values['kd'].values()), ddof=1))
    assert stats['nc']['std'] is None
    assert study.summarise(dict(kd={0: 1.0, 1: 3.0}), [0, 1])['kd']['delta'] is None

    # the validation after the last epoch of the newest run counts, not an earlier epoch's or an older run's
    for stamp, records in (('20240101_000000', [dict(step=3, **{'accuracy/top1': 90.0})]),
                           ('20240102_000000', [dict(step=2, **{'accuracy/top1': 70.0}), dict(loss=1.0, step=3),
                                                dict(step=3, **{'accuracy/top1': 60.0})])):
        (tmp_path / stamp / 'vis_data').mkdir(parents=True)
        (tmp_path / stamp / 'vis_data' / 'scalars.json').write_text('\n'.join(map(json.dumps, records)) + '\n')
    assert study.final_top1(str(tmp_path), 3) == 60.0
    assert study.final_top1(str(tmp_path), 4) is None
    with pytest.raises(SystemExit):
        study.parse_args(['--epochs', '0'])


@pytest.mark.parametrize('method', list(cls_study.ROWS))
def test_study_configs_build(method):
    """Each study config builds a resnet8 student (and a resnet20 teacher) on 10 classes with its losses: KD is
    KD++ minus ND, DKD is DKD++ minus ND, NC + KD is NC plus KD; iCD as released weighs the task 0.1 and uses
    SDD's multi-region KD, the full-weight rows weigh it 1.0, the plain-KD rows use KD on the global logits."""
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    from mmkd.registry import MODELS
    study = cls_study
    cfg = Config.fromfile(osp.join(REPO, study.CONFIG_DIR, study.METHODS[method]))
    cfg.model.pop('teacher_ckpt', None)
    # every row the student-alone schedule (24 epochs, x0.1 steps at 12, 16, 18), on the 16x16 images
    assert cfg.train_cfg.max_epochs == S_EPOCHS == 24 and cfg.param_scheduler.type == 'MultiStepLR'
    assert cfg.param_scheduler.milestones == [12, 16, 18]
    for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
        assert loader.dataset.pipeline[0] == dict(type='Resize', scale=(16, 16), keep_ratio=False, interpolation='area')
    with DefaultScope.overwrite_default_scope('mmkd'):
        model = MODELS.build(cfg.model)
    student = model if method == 'baseline' else model.student
    assert len(student.backbone.layers) == 3 and all(len(stage) == 1 for stage in student.backbone.layers)
    assert student.head.num_classes == 10
    if method != 'baseline':
        assert all(len(stage) == 3 for stage in model.teacher.backbone.layers)  # resnet20
        losses = set(model.distiller.distill_losses)
        assert losses == dict(kd={'loss_kd'}, kdpp={'loss_kd', 'loss_nd'}, dkd={'loss_dkd'},
                              dkdpp={'loss_dkd', 'loss_nd'}, nc={'loss_nc'}, nc_kd={'loss_nc', 'loss_kd'},
                              icd={'loss_kd', 'loss_icd'}, icd_full={'loss_kd', 'loss_icd'},
                              icd_plainkd={'loss_kd', 'loss_icd'}, icd_full_plainkd={'loss_kd', 'loss_icd'})[method]
        assert (model.class_means is not None) == (method in ('kdpp', 'dkdpp', 'nc', 'nc_kd'))
        if method in ('kd', 'kdpp', 'dkd', 'dkdpp'):  # no warm-up in any row (the papers' 20 of 240 epochs)
            assert cfg.model.get('loss_warmup') is None
    ce = student.head.loss_module.loss_weight if hasattr(student.head, 'loss_module') else None
    if method.startswith('icd'):
        assert ce == (0.1 if method in ('icd', 'icd_plainkd') else 1.0)
        kd = type(model.distiller.distill_losses.loss_kd).__name__
        assert kd == ('KLDivergence' if method.endswith('plainkd') else 'SDDKDLoss')  # released: SDD's KD


def test_heldout_split_trains_on_the_first_images_and_evaluates_on_the_rest(tmp_path):
    """--eval-on heldout: the students evaluate on the training images after the first --num-train (never the test
    images), in <work-dir>_heldout by default, and share the reported study's teacher, whose command (training on
    the first --num-train, validating on the test images) is the reported study's."""
    args = ['--num-train', '100', '--num-heldout', '20', '--seeds', '0', '--methods', 'baseline', 'kdpp', '--dry-run']
    reported = _study('--work-dir', str(tmp_path / 'study'), *args).strip().splitlines()
    tuning = _study('--work-dir', str(tmp_path / 'study'), '--teacher-dir', str(tmp_path / 'study' / 'teacher'),
                    '--eval-on', 'heldout', *args).strip().splitlines()
    assert tuning[0] == reported[0]  # the same teacher run
    for line in reported + tuning:
        assert 'train_dataloader.dataset.index_range=[0,100]' in line
    heldout = [f'{loader}.dataset.{opt}' for loader in ('val_dataloader', 'test_dataloader')
               for opt in ('split=train', 'index_range=[100,120]', 'test_mode=True')]
    for line in tuning[1:]:
        assert all(opt in line for opt in heldout), line
    for line in reported + tuning[:1]:
        assert 'split=train' not in line and 'index_range=[100,120]' not in line
    defaults = cls_study.parse_args(['--eval-on', 'heldout'])
    assert defaults.work_dir.endswith('work_dirs/cls_study_heldout')
    assert defaults.teacher_dir.endswith('work_dirs/cls_study/teacher')
    assert defaults.data_root.endswith('work_dirs/cls_study/data')
    assert cls_study.parse_args([]).work_dir.endswith('work_dirs/cls_study')
    with pytest.raises(SystemExit):
        cls_study.parse_args(['--eval-on', 'heldout', '--num-heldout', '0'])


def test_new_rows_train_and_are_compared_with_their_bases(tmp_path):
    """DKD, DKD++ and NC + KD train (1 epoch, tiny data, held-out evaluation); the table compares each with its
    base: DKD++ with DKD, NC + KD with KD (the student alone is not run here: named as such)."""
    work_dir = tmp_path / 'study'
    out = _study('--work-dir', str(work_dir), '--num-train', '64', '--num-heldout', '32', '--num-test', '16',
                 '--epochs', '1', '--teacher-epochs', '1', '--seeds', '0', '--threads', '1', '--eval-on', 'heldout',
                 '--methods', 'kd', 'dkd', 'dkdpp', 'nc_kd', '--jobs', '2')
    results = json.loads((work_dir / 'results.json').read_text())
    assert results['eval_on'] == 'heldout' and results['data']['num_heldout'] == 32 and results['total_s'] > 0
    methods = results['methods']
    assert {m: methods[m]['base'] for m in methods} == dict(kd='baseline', dkd='baseline', dkdpp='dkd', nc_kd='kd')
    assert methods['kd']['base_delta_text'] == 'n/a (baseline not run)'
    for m, base in (('dkdpp', 'dkd'), ('nc_kd', 'kd')):
        assert methods[m]['base_delta'] == pytest.approx(methods[m]['top1'][0] - methods[base]['top1'][0])
        assert f'(n=1) vs {base} |' in out
    assert 'Final top-1 (%) on the 32 held-out training images (tuning split)' in out and 'Total time: ' in out
    from mmengine.config import Config
    for m in methods:  # every run trained on the first 64 images and evaluated on the held-out ones
        cfg = Config.fromfile(str(next((work_dir / f'{m}_seed0').glob('*_synthetic.py'))))
        assert list(cfg.train_dataloader.dataset.index_range) == [0, 64], m
        for loader in (cfg.val_dataloader, cfg.test_dataloader):
            assert loader.dataset.split == 'train' and list(loader.dataset.index_range) == [64, 96], m


def test_summary_compares_each_row_with_its_base():
    values = dict(baseline={0: 50.0, 1: 52.0}, kd={0: 55.0, 1: 54.0}, kdpp={0: 56.0, 1: 53.0}, dkdpp={0: 60.0})
    stats = cls_study.summarise(values, [0, 1], bases=dict(kd='baseline', kdpp='kd', dkdpp='dkd'))
    assert stats['kdpp']['base_delta'] == pytest.approx(0.0) and stats['kdpp']['base_delta_n'] == 2
    assert stats['kdpp']['base_delta_se'] == pytest.approx(1.0)  # diffs +1, -1: sd sqrt(2), se 1
    assert stats['kdpp']['base_delta_text'] == '+0.00 ± 1.00 (n=2) vs kd'
    assert stats['dkdpp']['base_delta'] is None and stats['dkdpp']['base_delta_text'] == 'n/a (dkd not run)'
    assert stats['baseline']['base'] is None and stats['baseline']['base_delta_text'] == ''


def test_epochs_stretch_the_configs_schedule():
    """--epochs keeps the schedule's shape: a cosine ends at the new length, a multi-step schedule's milestones stay
    at the same fractions (rounded up)."""
    student = f'{cls_study.CONFIG_DIR}/{cls_study.METHODS["baseline"]}'
    assert cls_study.schedule_options(student, 40) == [
        'train_cfg.max_epochs=40', 'default_hooks.checkpoint.interval=40', 'param_scheduler.milestones=[20,27,30]']
    assert cls_study.schedule_options(student, 2)[-1] == 'param_scheduler.milestones=[1,2,2]'
    teacher = f'{cls_study.CONFIG_DIR}/{cls_study.TEACHER}'
    assert cls_study.schedule_options(teacher, 12)[2:] == ['param_scheduler.T_max=12', 'param_scheduler.end=12']


def _record(method: str, seed: int, top1: float, config: str = None, **extra) -> dict:
    config = config or (cls_study.TEACHER if method == 'teacher' else cls_study.METHODS[method])
    history = [{'accuracy/top1': top1 - 2.0, 'step': 18}, {'accuracy/top1': top1, 'step': 24}]
    return dict(study='cls', config=config, method=method, seed=seed, metric_name='accuracy/top1', metric=top1,
                top1=top1, history=history, seconds=10.0 + 2 * seed, **extra)


def test_report_rebuilds_the_table_from_results_jsonl(tmp_path):
    records = [_record('teacher', 0, 80.0), _record('icd', 0, 69.0), _record('icd', 1, 71.0),
               _record('kd', 0, 66.0), _record('kd', 1, 65.0), _record('baseline', 0, 60.0),
               _record('baseline', 1, 62.0), _record('kd', 1, 67.0),  # a later record of kd seed 1 wins
               _record('kd_w2', 0, 70.0, 'kd_res20_res8_synthetic.py loss_weight=2', label='KD, w=2')]
    (tmp_path / 'results.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in records))
    out = tmp_path / 'results.md'
    results = cls_study.main(['--report', '--out', str(out), '--seeds', '0', '1'])
    assert not (tmp_path / 'study').exists() and list(tmp_path.glob('*_seed*')) == []  # nothing trained
    assert list(results['methods']) == ['baseline', 'kd', 'icd', 'kd_w2']  # ROWS order, then the others
    table = out.read_text()
    # kd - baseline: +6, +5 -> +5.50 ± 0.50; icd - kd: +3, +4 -> +3.50 ± 0.50; icd - baseline: +9, +9
    assert ('| kd | kd_res20_res8_synthetic.py | 66.00 | 67.00 | 2 | 66.50 ± 0.71 | +5.50 ± 0.50 (n=2) | '
            '+5.50 ± 0.50 (n=2) vs baseline | +2.00 | 11 |') in table
    assert ('| icd | icd_res20_res8_synthetic.py | 69.00 | 71.00 | 2 | 70.00 ± 1.41 | +9.00 ± 0.00 (n=2) | '
            '+3.50 ± 0.50 (n=2) vs kd | +2.00 | 11 |') in table
    # a variant: compared with its method's base (KD's: the student alone), one seed
    assert ('| kd_w2 | kd_res20_res8_synthetic.py loss_weight=2 | 70.00 | missing | 1 | 70.00 | +10.00 (n=1, seed 1 '
            'missing) | +10.00 (n=1, seed 1 missing) vs baseline |') in table
    assert '| teacher (seed 0) | res20_teacher_synthetic.py | 80.00 | | 1 | 80.00 | | | +2.00 | 10 |' in table
    assert 'Machine: not recorded (--report of results.jsonl)' in table and 'Total time' not in table
    assert json.loads((tmp_path / 'results.json').read_text())['methods']['icd']['base_delta'] == pytest.approx(3.5)
    # a second report keeps the command, machine, total time and provenance of the results.json there
    previous = json.loads((tmp_path / 'results.json').read_text())
    previous.update(command='python tools/analysis/cls_study.py --seeds 0 1', machine='M', total_s=120.0,
                    provenance='Provenance: runs of two invocations.')
    (tmp_path / 'results.json').write_text(json.dumps(previous))
    cls_study.main(['--report', '--out', str(out), '--seeds', '0', '1'])
    table = out.read_text()
    assert 'Provenance: runs of two invocations.' in table and 'Machine: M' in table
    assert 'Command: `python tools/analysis/cls_study.py --seeds 0 1`' in table and 'Total time: 120 s' in table


def test_report_without_results_jsonl_says_so(tmp_path):
    with pytest.raises(SystemExit, match='no .*results.jsonl; give --out'):
        cls_study.main(['--report', '--out', str(tmp_path / 'results.md')])


def test_report_keeps_the_newer_record_of_a_run_whatever_the_line_order(tmp_path):
    """As rewrite_results: of two records of one (method, seed), the one that finished later counts, even when the
    older one comes later in the file (e.g. appended by a --report of an older work dir)."""
    records = [_record('baseline', 0, 60.0), _record('kd', 0, 70.0, finished_at='2026-12-07T12:00:00+00:00'),
               _record('kd', 0, 66.0, finished_at='2026-12-06T12:00:00+00:00')]
    (tmp_path / 'results.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in records))
    results = cls_study.main(['--report', '--out', str(tmp_path / 'results.md'), '--seeds', '0'])
    assert results['methods']['kd']['top1'] == [70.0]
