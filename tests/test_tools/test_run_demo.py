"""The README's main command (`make demo` -> tools/analysis/run_demo.py -> mmkd.analysis.demo -> det_study), at a
smoke-test size, and the demo's rows."""
import json
import os.path as osp
import subprocess
import sys

import torch

from mmkd.analysis import demo, det_study

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_demo_trains_teacher_baseline_and_students_then_prints_one_table(tmp_path):
    wd = tmp_path / 'wd'
    cmd = [sys.executable, 'tools/analysis/run_demo.py', '--work-dir', str(wd), '--data-root', str(tmp_path / 'data'),
           '--num-train', '8', '--num-heldout', '2', '--num-val', '4', '--rows', 'baseline', 'nd',
           '--teacher-iters', '4', '--student-iters', '4']
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
    report = subprocess.run([*cmd[:-4], 'kd', *cmd[-4:], '--report'], cwd=REPO, capture_output=True, text=True,
                            timeout=300)
    assert report.returncode == 0, report.stderr[-3000:]
    assert 'kd seed 0: not finished' in report.stdout and '| KD++ (ND + KD) |' in report.stdout
    assert '| KD (RoI logits) |' not in report.stdout and not (wd / 'kd').exists()


def test_demo_rows_are_the_studys_seed_0_runs(tmp_path):
    """make demo: the teacher, the student alone, KD, KD++, ReviewKD++, NC + KD and iCD-RoI + KD at seed 0, with the
    study's schedule (no iteration override) and the study's data."""
    assert demo.DEMO_ROWS == ['baseline', 'kd', 'nd', 'reviewkdpp', 'nc', 'icd']
    assert set(demo.DEMO_ROWS) <= set(det_study.STUDY_ROWS)
    out = subprocess.run([sys.executable, 'tools/analysis/run_demo.py', '--dry-run', '--work-dir', str(tmp_path)],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    assert [line.split(':')[0] for line in lines] == [f'[{i}/7] {row} seed 0' for i, row in
                                                      enumerate(['teacher', *demo.DEMO_ROWS], 1)]
    for line, row in zip(lines[1:], demo.DEMO_ROWS):
        assert f'configs/demo/{det_study.ROWS[row].config}' in line and 'max_iters' not in line
    assert not tmp_path.joinpath('baseline').exists()
