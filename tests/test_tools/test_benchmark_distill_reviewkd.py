"""tools/analysis/benchmark_distill.py on the ReviewKD configs: connectors, tuple-valued loss inputs, the 1.10 goal
of feature distillation and --modes."""
import json
import os
import os.path as osp
import re
import subprocess
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from test_benchmark_distill import REPO, check_report  # noqa: E402


def bench(config, tmp_path, *extra):
    out = tmp_path / 'bench.json'
    cmd = [sys.executable, 'tools/analysis/benchmark_distill.py', config, '--img-size', '64', '48', '--batch-size', '2',
           '--repeats', '1', '--warmup', '0', '--json', str(out), *extra]
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=200)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return proc.stdout, json.loads(out.read_text())


def test_reviewkd_config_runs_every_mode_against_the_connector_goal(tmp_path):
    """Plain ReviewKD: HCL reads tuples only (the stock mode's row truncation has nothing to cut)."""
    stdout, result = bench('configs/demo/faster_rcnn_r50_r18_reviewkd.py', tmp_path)
    check_report(stdout, result)
    assert result['interleave'] is False
    assert result['goals'] == dict(mmkd_over_mmrazor=0.9, mmkd_over_student_plus_teacher_fwd=1.10)
    assert 'mmkd_over_student_plus_teacher_fwd   ' in stdout and '(goal <= 1.1: ' in stdout


def test_modes_subset_reports_only_the_ratios_it_can(tmp_path):
    stdout, result = bench('configs/demo/faster_rcnn_r50_r18_reviewkdpp.py', tmp_path,
                           '--modes', 'mmkd', 'student', 'teacher_fwd', '--interleave')
    assert list(result['modes']) == ['student', 'teacher_fwd', 'mmkd'] and result['interleave'] is True
    assert all(m['median_s'] > 0 and m['peak_mib'] > 0 for m in result['modes'].values())
    assert set(result['ratios']) == {'mmkd_over_student_plus_teacher_fwd'}
    modes = result['modes']
    ratio = modes['mmkd']['median_s'] / (modes['student']['median_s'] + modes['teacher_fwd']['median_s'])
    assert abs(result['ratios']['mmkd_over_student_plus_teacher_fwd'] - ratio) < 1e-12
    assert not re.search(r'^mmrazor', stdout, re.M) and 'finite check' in stdout
    stdout, result = bench('configs/demo/faster_rcnn_r50_r18_reviewkdpp.py', tmp_path, '--modes', 'student')
    assert result['ratios'] == {} and result['finite_check'] is None and 'finite check' not in stdout


def test_op_breakdown_lists_what_distillation_adds(tmp_path):
    """The breakdown's structure and arithmetic on the profiled numbers it reports; no assertion on how long an
    operator takes (one profiled step on a shared CPU is noise). With N above the number of operators every one
    is listed, so HCL's own operators (mse_loss and its backward, which neither the student nor the teacher's
    forward runs) are there, with no base time."""
    stdout, result = bench('configs/demo/faster_rcnn_r50_r18_reviewkdpp.py', tmp_path,
                           '--modes', 'student', 'teacher_fwd', 'mmkd', '--op-breakdown', '100000')
    breakdown = result['op_breakdown']
    totals = breakdown['total_s']
    assert abs(breakdown['extra_s'] - (totals['mmkd'] - totals['student'] - totals['teacher_fwd'])) < 1e-6
    rows = breakdown['ops']
    ops = [r['op'] for r in rows]
    assert len(set(ops)) == len(ops) and [r['extra_s'] for r in rows] == sorted((r['extra_s'] for r in rows),
                                                                                reverse=True)
    assert all(abs(r['mmkd_s'] - r['base_s'] - r['extra_s']) < 1e-9 for r in rows)
    # every operator listed: the rows' times add up to the totals
    assert abs(sum(r['mmkd_s'] for r in rows) - totals['mmkd']) < 1e-6
    assert abs(sum(r['base_s'] for r in rows) - totals['student'] - totals['teacher_fwd']) < 1e-6
    by_op = {r['op']: r for r in rows}
    for op in ('aten::mse_loss', 'aten::mse_loss_backward', 'aten::adaptive_avg_pool2d'):
        assert op in by_op and by_op[op]['base_s'] == 0, (op, sorted(by_op))
    assert re.search(r'^operators, one profiled step each .* extra ', stdout, re.M)
    assert all(op[:48] in stdout for op in ops)


def test_op_breakdown_arithmetic_and_its_refusals(monkeypatch):
    monkeypatch.syspath_prepend(osp.join(REPO, 'tools', 'analysis'))
    import benchmark_distill
    per_mode = dict(student=dict(conv=2.0, relu=1.0), teacher_fwd=dict(conv=1.0),
                    mmkd=dict(conv=5.0, relu=1.5, mse=0.25))
    out = benchmark_distill.op_breakdown(per_mode, top=2)
    assert out['total_s'] == dict(student=3.0, teacher_fwd=1.0, mmkd=6.75) and out['extra_s'] == 2.75
    assert [(r['op'], r['base_s'], r['extra_s']) for r in out['ops']] == [('conv', 3.0, 2.0), ('relu', 1.0, 0.5)]
    cmd = [sys.executable, 'tools/analysis/benchmark_distill.py', 'configs/demo/faster_rcnn_r50_r18_reviewkdpp.py',
           '--modes', 'student', 'mmkd', '--op-breakdown', '3']
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=100)
    assert proc.returncode == 2 and 'student, teacher_fwd and mmkd' in proc.stderr
