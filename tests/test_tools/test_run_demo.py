"""The README's main command (`make demo` -> tools/analysis/run_demo.py -> mmkd.analysis.demo -> det_study), at a
smoke-test size, and the demo's rows."""
import json
import os.path as osp
import subprocess
import sys

import pytest
import torch

from mmkd.analysis import demo, det_study

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_demo_trains_teacher_baseline_and_students_then_prints_one_table(tmp_path):
    wd = tmp_path / 'wd'
    cmd = [sys.executable, 'tools/analysis/run_demo.py', '--work-dir', str(wd), '--data-root', str(tmp_path / 'data'),
           '--num-train', '8', '--num-heldout', '2', '--num-val', '4', '--rows', 'baseline', 'nd',
           '--teacher-iters', '4', '--student-iters', '4', '--dense-rows']  # the dense pair: the next test
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    for row in ('| teacher R50-FPN (seed 0) |', '| student R18-FPN alone |', '| KD++ (ND + KD) |'):
        assert row in out.stdout, out.stdout[-3000:]
    assert 'source .venv/bin/activate' in out.stdout  # python tools/... commands need the venv
    assert f'Pictures: {wd}/det_*.png' in out.stdout and (wd / 'det_metric.png').is_file()
    records = [json.loads(line) for line in (wd / 'results.jsonl').read_text().splitlines()]
    assert [(r['method'], r['seed']) for r in records] == [('teacher', 0), ('baseline', 0), ('nd', 0)]
    teacher, baseline, nd = records
    # the distilled student was trained from the teacher this demo trained, on the same data
    ckpt = (wd / 'teacher' / 'last_checkpoint').read_text().strip()
    assert f'model.teacher_ckpt={ckpt}' in nd['command'] and 'teacher_ckpt' not in baseline['command']
    assert torch.load(ckpt, map_location='cpu', weights_only=False)['meta']['iter'] == 4
    for r in records:  # validated at 1/4, 2/4, 3/4 and the end of each schedule; classwise AP kept
        assert [h['step'] for h in r['history']] == [1, 2, 3, 4]
        assert r['metric'] == r['history'][-1]['coco/bbox_mAP'] and 'coco/circle_precision' in r['metrics']
        assert r['seconds'] > 0
    assert (wd / 'results.md').read_text().count('\n| ') >= 4
    again = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)  # finished runs reused
    assert again.returncode == 0 and again.stdout.count(': done before') == 3, again.stdout[-2000:]
    assert len((wd / 'results.jsonl').read_text().splitlines()) == 3  # each run once after a resumed study
    # --report trains nothing: it summarises the finished runs and names the missing ones
    report = subprocess.run([*cmd[:-5], 'kd', *cmd[-5:], '--report'], cwd=REPO, capture_output=True, text=True,
                            timeout=300)
    assert report.returncode == 0, report.stderr[-3000:]
    assert 'kd seed 0: not finished' in report.stdout and '| KD++ (ND + KD) |' in report.stdout
    assert '| KD (RoI logits) |' not in report.stdout and not (wd / 'kd').exists()


def test_demo_dense_pair_starts_its_teacher_from_the_faster_rcnn_teachers_backbone(tmp_path, monkeypatch, capsys):
    """The dense pair after the Faster R-CNN part: a GFL teacher whose backbone starts from the Faster R-CNN
    teacher's checkpoint, then GFL R18 alone and with CrossKD from it, in <work-dir>/dense; a second call reuses
    them, and retrains them once the Faster R-CNN teacher is retrained. An untrained GFL scores every prior about
    0.01, under the configs' score_thr of 0.05 (no detection, no mAP), so the dense runs keep every score here (the
    students as variants of their rows)."""
    shipped = demo.dense_defaults

    def keep_every_score(args, rows, fr_teacher):
        out = shipped(args, rows, fr_teacher)
        assert out['rows'] == ['baseline', 'crosskd'] and out['teacher_config'] == 'gfl_r50_teacher_demo.py'
        return dict(out, rows=[], teacher_cfg_options=out['teacher_cfg_options'] + ['model.test_cfg.score_thr=0'],
                    variant=[['alone', 'baseline', 'model.test_cfg.score_thr=0'],
                             ['ckd', 'crosskd', 'model.architecture.test_cfg.score_thr=0']])

    monkeypatch.setattr(demo, 'dense_defaults', keep_every_score)
    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    wd = tmp_path / 'wd'
    argv = ['--work-dir', str(wd), '--data-root', str(tmp_path / 'data'), '--num-train', '8', '--num-heldout', '2',
            '--num-val', '4', '--rows', '--teacher-iters', '4', '--student-iters', '4']
    result = demo.main(argv)
    out = capsys.readouterr().out
    assert not result['failures'] and not result['dense']['failures'], out[-3000:]
    assert '| teacher GFL R50-FPN (gfl_r50_teacher_demo.py) (seed 0) |' in out and '| CrossKD, tuned:' in out
    assert f'Pictures: {wd}/dense/dense_*.png' in out and (wd / 'dense' / 'dense_metric.png').is_file()
    dense = [json.loads(line) for line in (wd / 'dense' / 'results.jsonl').read_text().splitlines()]
    assert [(r['study'], r['method'], r['seed']) for r in dense] == [('dense', 'teacher', 0), ('dense', 'alone', 0),
                                                                     ('dense', 'ckd', 0)]
    fr_ckpt = (wd / 'teacher' / 'last_checkpoint').read_text().strip()
    assert fr_ckpt == str(wd / 'teacher' / 'iter_4.pth')
    assert f'model.backbone.init_cfg.checkpoint={fr_ckpt}' in dense[0]['command']
    assert f'model.teacher_ckpt={wd}/dense/teacher/iter_4.pth' in dense[2]['command']
    # mmengine loaded the backbone from the Faster R-CNN teacher before the first step
    log = (wd / 'dense' / 'teacher' / 'train.log').read_text()
    assert f'load backbone. in model from: {fr_ckpt}' in log, log[-3000:]
    # a second call trains nothing; once the Faster R-CNN teacher is retrained, so are the dense teacher and CrossKD
    # (the student alone needs no teacher)
    demo.main(argv)
    assert capsys.readouterr().out.count(': done before') == 4
    (wd / 'teacher' / 'study_run.json').unlink()  # its record gone: the Faster R-CNN teacher trains again
    demo.main(argv)
    out = capsys.readouterr().out
    assert out.count('training (log:') == 3 and 'alone seed 0: done before' in out, out[-3000:]
    assert all(f'{run} seed 0: training' in out for run in ('[1/1] teacher', '[1/3] teacher', 'ckd'))
    # --rows with no row that needs the Faster R-CNN teacher: its finished run still starts the dense pair
    with_baseline = [*argv[:argv.index('--rows') + 1], 'baseline', *argv[argv.index('--rows') + 1:]]
    demo.main(with_baseline)
    out = capsys.readouterr().out
    assert out.count('training (log:') == 1 and out.count(': done before') == 3, out[-3000:]
    # without its checkpoint the dense pair is not run, and the demo says why and exits 1
    (wd / 'teacher' / 'iter_4.pth').unlink()
    with pytest.raises(SystemExit) as exit_:
        demo.main(with_baseline)
    err = capsys.readouterr().err
    assert exit_.value.code == 1 and f"teacher's checkpoint {wd}/teacher/iter_4.pth, which is not there" in err


def test_demo_rows_are_the_studys_seed_0_runs(tmp_path):
    """make demo: the teacher, the student alone, KD, KD++ and ReviewKD++ at seed 0, with the study's schedule (no
    iteration override) and the study's data; then the dense pair: its teacher, and the dense study's seed-0 runs
    of the student alone and CrossKD."""
    assert demo.DEMO_ROWS == ['baseline', 'kd', 'nd', 'reviewkdpp']
    assert set(demo.DEMO_ROWS) <= set(det_study.STUDY_ROWS)
    assert demo.DENSE_DEMO_ROWS == ['baseline', 'crosskd']
    out = subprocess.run([sys.executable, 'tools/analysis/run_demo.py', '--dry-run', '--work-dir', str(tmp_path)],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    assert [line.split(':')[0] for line in lines] == (
        [f'[{i}/5] {row} seed 0' for i, row in enumerate(['teacher', *demo.DEMO_ROWS], 1)] +
        [f'[{i}/3] {row} seed 0' for i, row in enumerate(['teacher', *demo.DENSE_DEMO_ROWS], 1)])
    for line, row in zip(lines[1:5], demo.DEMO_ROWS):
        assert f'configs/demo/{det_study.ROWS[row].config}' in line and 'max_iters' not in line
    for line, row in zip(lines[6:], demo.DENSE_DEMO_ROWS):
        assert f'configs/demo/{det_study.DENSE_ROWS[row].config} --work-dir {tmp_path}/dense/{row}/seed0' in line
        assert 'max_iters' not in line
    # the dense teacher starts from the Faster R-CNN teacher's last checkpoint; CrossKD distils from the dense one
    assert 'configs/demo/gfl_r50_teacher_demo.py' in lines[5] and 'max_iters' not in lines[5]
    assert f'model.backbone.init_cfg.checkpoint={tmp_path}/teacher/iter_1500.pth' in lines[5]
    assert f'model.teacher_ckpt={tmp_path}/dense/teacher/iter_' in lines[7]
    assert not tmp_path.joinpath('baseline').exists() and not tmp_path.joinpath('dense').exists()
    # --dense-rows with nothing: no dense pair
    out = subprocess.run([sys.executable, 'tools/analysis/run_demo.py', '--dry-run', '--work-dir', str(tmp_path),
                          '--dense-rows'], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and len(out.stdout.strip().splitlines()) == 5, out.stdout + out.stderr[-2000:]
