"""The README's main command (`make demo` -> tools/analysis/run_demo.py), at a smoke-test size."""
import json
import os.path as osp
import subprocess
import sys

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_demo_trains_teacher_baseline_and_students_then_prints_one_table(tmp_path):
    cmd = [sys.executable, 'tools/analysis/run_demo.py', '--work-dir', str(tmp_path / 'wd'), '--data-root',
           str(tmp_path / 'data'), '--num-train', '8', '--num-val', '4', '--img-size', '64', '--methods', 'baseline',
           'nd', '--cfg-options', 'train_cfg.max_iters=2']
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    for row in ('| teacher R50-FPN |', '| student R18-FPN alone |', '| R50 -> R18, nd |'):
        assert row in out.stdout, out.stdout[-3000:]
    results = json.loads((tmp_path / 'wd' / 'results.json').read_text())
    assert set(results['students']) == {'baseline', 'nd'}
    for run in [results['teacher'], *results['students']['baseline'], *results['students']['nd']]:
        assert 0 <= run['coco/bbox_mAP'] <= 1 and run['seconds'] > 0
    assert (tmp_path / 'wd' / 'results.md').read_text().count('\n| ') >= 4
    again = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)  # finished runs reused
    assert again.returncode == 0 and again.stdout.count(': reused') == 3
