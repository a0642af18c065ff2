"""The README's main command (`make demo` -> tools/analysis/run_demo.py -> det_study.py), at a smoke-test size."""
import json
import os.path as osp
import subprocess
import sys

import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_demo_trains_teacher_baseline_and_students_then_prints_one_table(tmp_path):
    wd = tmp_path / 'wd'
    cmd = [sys.executable, 'tools/analysis/run_demo.py', '--work-dir', str(wd), '--data-root', str(tmp_path / 'data'),
           '--num-train', '8', '--num-heldout', '2', '--num-val', '4', '--rows', 'baseline', 'nd',
           '--teacher-iters', '4', '--student-iters', '4']
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    for row in ('| teacher R50-FPN (seed 0) |', '| student R18-FPN alone |', '| ND + KD (KD++) |'):
        assert row in out.stdout, out.stdout[-3000:]
    assert 'source .venv/bin/activate' in out.stdout  # python tools/... commands need the venv
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
    assert 'kd seed 0: not finished' in report.stdout and '| ND + KD (KD++) |' in report.stdout
    assert '| KD (RoI logits) |' not in report.stdout and not (wd / 'kd').exists()
