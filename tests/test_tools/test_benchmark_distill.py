"""tools/analysis/benchmark_distill.py: one tiny run on the demo KD++ config prints and saves all modes."""
import json
import math
import os
import os.path as osp
import re
import subprocess
import sys

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
MODES = ('student', 'teacher_fwd', 'mmrazor', 'mmkd_nchw', 'mmkd')
RATIOS = ('mmkd_over_mmrazor', 'mmkd_over_student_plus_teacher_fwd')


def test_benchmark_distill_reports_every_mode_and_both_ratios(tmp_path):
    out = tmp_path / 'bench.json'
    cmd = [sys.executable, 'tools/analysis/benchmark_distill.py', 'configs/demo/faster_rcnn_r50_r18_nd.py',
           '--img-size', '64', '48', '--batch-size', '1', '--repeats', '1', '--warmup', '0', '--json', str(out)]
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]

    number = r'(\d+\.\d+)'
    for mode in MODES:
        match = re.search(rf'^{mode}\s+{number}\s+{number}$', proc.stdout, re.M)
        assert match, f'no row for {mode} in:\n{proc.stdout}'
        assert float(match[1]) > 0 and math.isfinite(float(match[2]))
    for ratio in RATIOS:
        assert re.search(rf'^{ratio}\s+{number}\s+\(goal <= [\d.]+: (met|NOT met)\)$', proc.stdout, re.M), \
            proc.stdout
    assert re.search(rf'^mmkd_nchw_over_mmrazor\s+{number}$', proc.stdout, re.M), proc.stdout
    assert '1 x 64x48 images' in proc.stdout

    result = json.loads(out.read_text())
    assert result['img_size'] == [64, 48] and result['batch_size'] == 1 and result['repeats'] == 1
    modes = result['modes']
    assert set(modes) == set(MODES)
    assert all(modes[m]['median_s'] > 0 and math.isfinite(modes[m]['peak_mib']) for m in MODES)
    assert modes['student']['peak_mib'] > 0  # a training step allocates at least its gradients
    reference = modes['student']['median_s'] + modes['teacher_fwd']['median_s']
    assert math.isclose(result['ratios']['mmkd_over_mmrazor'], modes['mmkd']['median_s'] / modes['mmrazor']['median_s'])
    assert math.isclose(result['ratios']['mmkd_over_student_plus_teacher_fwd'], modes['mmkd']['median_s'] / reference)
    assert result['goals'] == dict(mmkd_over_mmrazor=0.9, mmkd_over_student_plus_teacher_fwd=1.05)
    assert result['mmkd_teacher'] == dict(fused_batchnorms=True, channels_last=True)


def test_benchmark_distill_cfg_options_reach_the_model(tmp_path):
    out = tmp_path / 'bench.json'
    cmd = [sys.executable, 'tools/analysis/benchmark_distill.py', 'configs/demo/faster_rcnn_r50_r18_kd.py',
           '--img-size', '64', '48', '--batch-size', '1', '--repeats', '1', '--warmup', '0', '--json', str(out),
           '--cfg-options', 'model.teacher_channels_last=False']
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert json.loads(out.read_text())['mmkd_teacher'] == dict(fused_batchnorms=True, channels_last=False)


def test_benchmark_distill_refuses_a_config_that_is_not_roi_distill():
    cmd = [sys.executable, 'tools/analysis/benchmark_distill.py', 'configs/demo/faster_rcnn_r18_baseline.py',
           '--img-size', '64', '64']
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and 'RoIDistill config' in proc.stderr
