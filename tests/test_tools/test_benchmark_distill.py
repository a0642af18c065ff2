"""tools/analysis/benchmark_distill.py: one tiny run on the demo KD++ config prints and saves all modes."""
import json
import math
import os
import os.path as osp
import re
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
MODES = ('student', 'teacher_fwd', 'mmrazor', 'mmkd_nchw', 'mmkd')
RATIOS = ('mmkd_over_mmrazor', 'mmkd_over_student_plus_teacher_fwd')


def check_report(stdout: str, result: dict) -> None:
    """The printed table and the JSON agree, and every printed ratio and verdict follows from the printed times.

    Nothing is asserted about the speed itself (a shared CPU is noisy): only that the report is computed right.
    """
    number = r'(\d+\.\d+)'
    printed = {}
    for mode in MODES:
        match = re.search(rf'^{mode}\s+{number}\s+{number}$', stdout, re.M)
        assert match, f'no row for {mode} in:\n{stdout}'
        printed[mode] = float(match[1])
        assert printed[mode] > 0 and math.isfinite(float(match[2]))
        assert math.isclose(printed[mode], round(result['modes'][mode]['median_s'], 4), abs_tol=1e-9)
        assert math.isclose(float(match[2]), round(result['modes'][mode]['peak_mib'], 1), abs_tol=1e-9)
    assert set(result['modes']) == set(MODES)

    # each ratio from the printed times (4 decimals: allow their rounding, and the ratio's 3 decimals)
    expected = dict(
        mmkd_over_mmrazor=(printed['mmkd'], printed['mmrazor']),
        mmkd_over_student_plus_teacher_fwd=(printed['mmkd'], printed['student'] + printed['teacher_fwd']),
        mmkd_nchw_over_mmrazor=(printed['mmkd_nchw'], printed['mmrazor']))
    assert set(result['ratios']) == set(expected)
    for name, (num, den) in expected.items():
        match = re.search(rf'^{name}\s+{number}(?:  \(goal <= {number}: (met|NOT met)\))?$', stdout, re.M)
        assert match, f'no line for {name} in:\n{stdout}'
        ratio = float(match[1])
        slack = 5e-5 * (1 / den + num / den**2) * 2 + 5e-4
        assert abs(ratio - num / den) <= slack, (name, ratio, num / den)
        assert math.isclose(ratio, round(result['ratios'][name], 3), abs_tol=1e-9)
        if name in RATIOS:  # the verdict is the JSON ratio against the goal, both as printed and as saved
            goal = float(match[2])
            assert goal == result['goals'][name]
            assert match[3] == ('met' if result['ratios'][name] <= goal else 'NOT met'), match[0]
        else:
            assert match[2] is None and name not in result['goals']


def test_check_report_catches_a_wrong_verdict_or_ratio():
    """check_report rejects a report whose verdict or ratio does not follow from its times."""
    times = dict(student=1.0, teacher_fwd=0.5, mmrazor=2.0, mmkd_nchw=1.9, mmkd=1.6)
    result = dict(modes={m: dict(median_s=t, peak_mib=10.0) for m, t in times.items()},
                  ratios=dict(mmkd_over_mmrazor=0.8, mmkd_over_student_plus_teacher_fwd=1.6 / 1.5,
                              mmkd_nchw_over_mmrazor=0.95),
                  goals=dict(mmkd_over_mmrazor=0.9, mmkd_over_student_plus_teacher_fwd=1.05))
    rows = '\n'.join(f'{m:<12} {t:>9.4f} {10.0:>9.1f}' for m, t in times.items())
    good = (f'{rows}\nmmkd_over_mmrazor                    0.800  (goal <= 0.9: met)\n'
            f'mmkd_over_student_plus_teacher_fwd   1.067  (goal <= 1.05: NOT met)\n'
            f'mmkd_nchw_over_mmrazor               0.950\n')
    check_report(good, result)
    for bad in (good.replace('0.9: met', '0.9: NOT met'), good.replace('1.05: NOT met', '1.05: met'),
                good.replace('0.800', '0.850'), good.replace('0.950', '0.900')):
        with pytest.raises(AssertionError):
            check_report(bad, result)


def test_benchmark_distill_reports_every_mode_and_both_ratios(tmp_path):
    out = tmp_path / 'bench.json'
    cmd = [sys.executable, 'tools/analysis/benchmark_distill.py', 'configs/demo/faster_rcnn_r50_r18_nd.py',
           '--img-size', '64', '48', '--batch-size', '1', '--repeats', '1', '--warmup', '0', '--json', str(out)]
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]

    result = json.loads(out.read_text())
    check_report(proc.stdout, result)
    assert '1 x 64x48 images' in proc.stdout
    assert result['img_size'] == [64, 48] and result['batch_size'] == 1 and result['repeats'] == 1
    modes = result['modes']
    assert modes['student']['peak_mib'] > 0  # a training step allocates at least its gradients
    assert result['goals'] == dict(mmkd_over_mmrazor=0.9, mmkd_over_student_plus_teacher_fwd=1.05)
    assert result['mmkd_teacher'] == dict(fused_batchnorms=True, channels_last=True)
    check = result['finite_check']  # the per-step finite check, timed alone (its speed is not asserted)
    assert check['median_s'] > 0
    assert check['share_of_mmkd_step'] == check['median_s'] / modes['mmkd']['median_s']
    assert f'finite check (finite_check_interval=1: every step): {check["median_s"] * 1e6:.0f} us' in proc.stdout


def test_benchmark_distill_cfg_options_reach_the_model(tmp_path):
    out = tmp_path / 'bench.json'
    cmd = [sys.executable, 'tools/analysis/benchmark_distill.py', 'configs/demo/faster_rcnn_r50_r18_kd.py',
           '--img-size', '64', '48', '--batch-size', '1', '--repeats', '1', '--warmup', '0', '--json', str(out),
           '--cfg-options', 'model.teacher_channels_last=False', '--amp']
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    result = json.loads(out.read_text())
    assert result['mmkd_teacher'] == dict(fused_batchnorms=True, channels_last=False)
    # --amp: the benchmark's own flag, every mode timed through the wrapper tools/train.py --amp uses
    assert result['amp'] == 'mmkd.CPUAmpOptimWrapper (bfloat16)' and 'amp: mmkd.CPUAmpOptimWrapper' in proc.stdout
    assert all(math.isfinite(m['median_s']) and m['median_s'] > 0 for m in result['modes'].values())


def test_amp_train_step_runs_under_autocast_through_the_amp_wrapper():
    """train_step(..., amp_device): the loss runs under the wrapper's autocast (bfloat16 on the CPU) and the step
    updates the weights; without it, no autocast (what gpu_check.sh's bench-fp32 / bench-amp compare)."""
    import importlib.util

    import torch
    spec = importlib.util.spec_from_file_location('benchmark_distill',
                                                  osp.join(REPO, 'tools/analysis/benchmark_distill.py'))
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(4, 4))
            self.seen = []

        def loss(self, inputs, samples):
            self.seen.append((torch.is_autocast_enabled('cpu'), (inputs @ self.w).dtype))
            return dict(loss=(inputs @ self.w).float().pow(2).sum())

        def parse_losses(self, losses):
            return sum(losses.values()), {}

    for amp, expected in ((torch.device('cpu'), (True, torch.bfloat16)), (None, (False, torch.float32))):
        model = Tiny()
        bench.train_step(model, 0.1, amp)(torch.ones(2, 4), None)
        assert model.seen == [expected]
        assert not torch.equal(model.w.detach(), torch.ones(4, 4))  # updated


def test_benchmark_distill_refuses_a_config_that_is_not_a_distill_config():
    cmd = [sys.executable, 'tools/analysis/benchmark_distill.py', 'configs/demo/faster_rcnn_r18_baseline.py',
           '--img-size', '64', '64']
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and 'RoIDistill config' in proc.stderr


def load_benchmark():
    import importlib.util
    path = osp.join(REPO, 'tools/analysis/benchmark_distill.py')
    spec = importlib.util.spec_from_file_location('benchmark_distill', path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def check_dense_report(stdout: str, result: dict, modes) -> None:
    """A dense config's report: the timed modes' rows, the ratios that follow from them, no goal verdict."""
    number = r'(\d+\.\d+)'
    assert set(result['modes']) == set(modes) and result['goals'] == {}
    printed = {}
    for mode in MODES:
        match = re.search(rf'^{mode}\s+{number}\s+{number}$', stdout, re.M)
        assert (match is not None) == (mode in modes), (mode, stdout)
        if match:
            printed[mode] = float(match[1])
            assert printed[mode] > 0 and math.isclose(printed[mode], round(result['modes'][mode]['median_s'], 4))
    expected = dict(mmkd_over_student_plus_teacher_fwd=('mmkd', ('student', 'teacher_fwd')))
    if 'mmrazor' in modes:
        expected.update(mmkd_over_mmrazor=('mmkd', ('mmrazor', )), mmkd_nchw_over_mmrazor=('mmkd_nchw', ('mmrazor', )))
    assert set(result['ratios']) == set(expected)
    for name, (num, den) in expected.items():
        match = re.search(rf'^{name}\s+{number}$', stdout, re.M)  # no "(goal <= ...)" verdict
        assert match, f'no line for {name} in:\n{stdout}'
        want = result['modes'][num]['median_s'] / sum(result['modes'][d]['median_s'] for d in den)
        assert math.isclose(result['ratios'][name], want) and math.isclose(float(match[1]), round(want, 3))


@pytest.mark.parametrize('method, counterpart', [
    ('fgd', 'mmrazor.FpnTeacherDistill (fixed batch records for '),
    ('crosskd', 'none: mmrazor has no counterpart of crosskd'),
])
def test_benchmark_distill_dense_config(tmp_path, method, counterpart):
    """A DenseDistill config (the demo GFL pair) at a tiny size: every mode that has a counterpart, the ratios, no
    goals; CrossKD has no mmrazor counterpart, so that mode is left out and the reason saved."""
    out = tmp_path / 'bench.json'
    cmd = [sys.executable, 'tools/analysis/benchmark_distill.py', f'configs/demo/gfl_r50_r18_{method}.py',
           '--img-size', '64', '48', '--batch-size', '2', '--repeats', '1', '--warmup', '0', '--json', str(out)]
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    result = json.loads(out.read_text())
    assert result['algorithm'] == 'DenseDistill' and result['mmrazor_counterpart'].startswith(counterpart)
    assert f'DenseDistill; mmrazor counterpart: {result["mmrazor_counterpart"]}' in proc.stdout
    check_dense_report(proc.stdout, result, [m for m in MODES if m != 'mmrazor' or method == 'fgd'])
    assert result['finite_check']['median_s'] > 0


def test_dense_mmrazor_counterpart_computes_the_same_fgd_losses():
    """The stock FpnTeacherDistill of a dense FGD config gets the batch's boxes and image sizes (FixedRecords) and
    gives the FGD losses DenseDistill gives (same weights; at initialisation FGD's terms do not depend on its
    random layers, so the build order does not matter)."""
    import torch
    from mmengine.config import Config
    bench = load_benchmark()
    cfg = Config.fromfile(osp.join(REPO, 'configs/demo/gfl_r50_r18_fgd.py'))
    model, nchw, stock, name, records = bench.build_models(cfg, seed=0)
    assert name.startswith('mmrazor.FpnTeacherDistill') and type(stock).__name__ == 'FpnTeacherDistill'
    torch.manual_seed(0)
    inputs, samples = bench.synthetic_batch(model, 2, 64, 48)
    records.update(bench.sample_records(samples))
    assert [tuple(b.shape) for b in records['gt_bboxes']] == [tuple(s.gt_instances.bboxes.shape) for s in samples]
    for m in (model, stock):
        m.train()
    with torch.no_grad():
        ours, theirs = model.loss(inputs, samples), stock.loss(inputs, samples)
    keys = [f'distill.loss_fgd_fpn{i}' for i in range(5)]
    assert set(keys) <= set(ours) and set(keys) <= set(theirs)
    for key in keys:
        assert float(ours[key]) > 0
        torch.testing.assert_close(theirs[key], ours[key], rtol=1e-4, atol=1e-7)
    # a config mmrazor has no counterpart of
    crosskd = Config.fromfile(osp.join(REPO, 'configs/demo/gfl_r50_r18_crosskd.py'))
    assert bench.stock_dense_config(crosskd.model)[0] is None


def _flops_run(tmp_path, method: str) -> dict:
    out = tmp_path / f'{method}.json'
    cmd = [sys.executable, 'tools/analysis/benchmark_distill.py', f'configs/demo/gfl_r50_r18_{method}.py',
           '--img-size', '64', '48', '--batch-size', '2', '--repeats', '1', '--warmup', '0', '--flops',
           '--modes', 'student', 'teacher_fwd', 'mmkd', '--json', str(out)]
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    result = json.loads(out.read_text())
    flops = result['flops']
    assert set(flops) == {'student', 'teacher_fwd', 'mmkd'} and all(v > 0 for v in flops.values())
    ratio = flops['mmkd'] / (flops['student'] + flops['teacher_fwd'])
    assert math.isclose(result['flop_ratios']['mmkd_over_student_plus_teacher_fwd'], ratio)
    match = re.search(r'^mmkd_over_student_plus_teacher_fwd \(FLOPs\)\s+(\d+\.\d+)$', proc.stdout, re.M)
    assert match and math.isclose(float(match[1]), round(ratio, 3)), proc.stdout
    return flops


def test_benchmark_flops_pkd_adds_no_compute(tmp_path):
    """--flops counts one step's matmul / convolution FLOPs per mode. PKD reads the two necks only: the teacher runs
    its backbone and neck (no head) and the loss is elementwise, so the distilled step counts exactly the student's
    step plus the teacher's forward; a teacher that ran work nobody reads would break the equality."""
    flops = _flops_run(tmp_path, 'pkd')
    assert flops['mmkd'] == flops['student'] + flops['teacher_fwd']


def test_benchmark_flops_crosskd_adds_the_cross_head_only(tmp_path):
    """CrossKD adds, beyond the student's step and the teacher's forward (backbone, neck and head), exactly the
    cross head: the teacher's convs k..S-1 of both stacks and its two predictors on the student's features, forward
    and the backward to their input (the teacher's weights get no gradient). Counted by hand from the head's
    shapes: a 3x3 conv C_in -> C_out on h x w costs 2 * 9 * C_in * C_out * h * w per image, its input gradient as
    much again."""
    from mmengine.config import Config
    flops = _flops_run(tmp_path, 'crosskd')
    cfg = Config.fromfile(osp.join(REPO, 'configs/demo/gfl_r50_r18_crosskd.py'))
    head = cfg.model.teacher.bbox_head
    k = 3  # the authors' reused_teacher_head_idx for GFL (DenseDistill's default)
    c, classes, bins = head.feat_channels, head.num_classes, head.reg_max + 1
    side = 64  # 64 x 48 images, padded to the preprocessor's multiple of 32: 64 x 64
    locations = sum((-(-side // stride))**2 for stride in head.anchor_generator.strides)  # 8x8, 4x4, 2x2, 1, 1
    per_location = 9 * c * (2 * (head.stacked_convs - k) * c + classes + 4 * bins)
    expected = 2 * 2 * per_location * 2 * locations  # x2 FLOPs per MAC, x2 images, x2 forward + input gradient
    assert flops['mmkd'] - flops['student'] - flops['teacher_fwd'] == expected
