"""tools/analysis/plot_study.py: the numbers behind the figures, and the figures from a results.jsonl."""
import importlib.util
import json
import os.path as osp
import statistics
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
_spec = importlib.util.spec_from_file_location('plot_study', osp.join(REPO, 'tools/analysis/plot_study.py'))
plot_study = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(plot_study)

CLASSES = ('circle', 'square', 'triangle')
# (method, seed) -> final mAP; the 'nd' numbers make mean 0.30 and sample std 0.02 (population std would be 0.0163)
FINAL = {('teacher', 0): 0.40, ('baseline', 0): 0.20, ('baseline', 1): 0.24, ('nd', 0): 0.28, ('nd', 1): 0.30,
         ('nd', 2): 0.32, ('kd', 0): 0.25, ('kd', 1): 0.27}


def det_run(method: str, seed: int, metric: float, teacher: bool = True) -> dict:
    history = []
    for step in (10, 20):
        # the teacher as an iteration-based run logged by epoch: every validation at step 0 (drawn by number)
        entry = {'step': 0 if method == 'teacher' else step, 'coco/bbox_mAP': metric * step / 20,
                 'nc/student_nc1': 5.0 / step + seed, 'nc/student_nc2': 0.5, 'nc/student_nc3': 0.7}
        if teacher and method != 'baseline':
            entry.update({'nc/teacher_nc1': 0.3, 'nc/teacher_nc2': 0.2, 'nc/teacher_nc3': 0.4,
                          'distill/top1_agreement': 0.8})
        history.append(entry)
    metrics = {'coco/bbox_mAP': metric, 'coco/bbox_mAP_50': 2 * metric}
    metrics.update({f'coco/{c}_precision': metric * (i + 1) / 3 for i, c in enumerate(CLASSES)})
    return dict(study='det', method=method, seed=seed, metric_name='coco/bbox_mAP', metric=metric, metrics=metrics,
                history=history, seconds=12.5)


@pytest.fixture
def results(tmp_path):
    runs = [det_run(m, s, v) for (m, s), v in FINAL.items()]
    runs.append(dict(study='cls', method='baseline', seed=0, metric_name='accuracy/top1', metric=61.0,
                     metrics={'accuracy/top1': 61.0}, history=[{'step': 1, 'accuracy/top1': 40.0},
                                                               {'step': 2, 'accuracy/top1': 61.0}], seconds=3.0))
    path = tmp_path / 'results.jsonl'
    path.write_text(''.join(json.dumps(r) + '\n' for r in runs) + '\n')
    return path, runs


def test_error_bars_are_mean_and_sample_std_over_seeds(results):
    _, runs = results
    summary = plot_study.summarize_metric([r for r in runs if r['study'] == 'det'])
    assert list(summary) == ['teacher', 'baseline', 'nd', 'kd']  # teacher, student alone, then as they come
    assert summary['nd']['values'] == [0.28, 0.30, 0.32] and summary['nd']['seeds'] == [0, 1, 2]
    assert summary['nd']['mean'] == pytest.approx(0.30)
    assert summary['nd']['std'] == pytest.approx(0.02)  # ddof=1
    assert summary['baseline']['std'] == pytest.approx(statistics.stdev([0.20, 0.24]))
    assert summary['teacher'] == dict(seeds=[0], values=[0.40], mean=0.40, std=None)  # one seed: no spread
    assert plot_study.best_method(summary) == 'nd'


def test_no_error_bar_for_one_seed(results):
    _, runs = results
    summary = plot_study.summarize_metric([r for r in runs if r['study'] == 'det'])
    fig = plot_study.metric_figure(summary, 'coco/bbox_mAP', 'det')
    bars = [c for c in fig.axes[0].containers if type(c).__name__ == 'ErrorbarContainer']
    # baseline (2 seeds), nd (3) and kd (2) have error bars, the single teacher run none
    assert len(bars) == 3
    heights = sorted(round(float(c.lines[2][0].get_segments()[0][1][1] - c.lines[2][0].get_segments()[0][0][1]), 6)
                     for c in bars)
    assert heights == sorted(round(2 * summary[m]['std'], 6) for m in ('baseline', 'nd', 'kd'))
    plot_study.plt.close(fig)


def test_best_method_has_every_seed():
    """A method with a higher mean over fewer seeds is not the best: its mean is not comparable."""
    runs = [dict(method=m, seed=s, metric=v) for m, s, v in (
        ('teacher', 0, 0.9), ('baseline', 0, 0.2), ('baseline', 1, 0.2), ('baseline', 2, 0.2),
        ('lucky', 0, 0.8), ('kd', 0, 0.3), ('kd', 1, 0.32), ('kd', 2, 0.31), ('nd', 0, 0.29), ('nd', 1, 0.3),
        ('nd', 2, 0.28))]
    summary = plot_study.summarize_metric(runs)
    assert plot_study.best_method(summary) == 'kd'
    assert plot_study.best_method(plot_study.summarize_metric([r for r in runs if r['method'] != 'kd'])) == 'nd'
    assert plot_study.best_method(plot_study.summarize_metric(runs[:5])) is None  # only 'lucky', with one seed


def test_curves_and_per_class_ap_average_over_seeds(results):
    _, runs = results
    det = [r for r in runs if r['study'] == 'det']
    steps, nc1 = plot_study.mean_curve([r for r in det if r['method'] == 'nd'], 'nc/student_nc1')
    assert steps == [10, 20] and nc1 == pytest.approx([0.5 + 1, 0.25 + 1])  # seeds 0, 1, 2 add 0, 1, 2
    assert plot_study.mean_curve([r for r in det if r['method'] == 'baseline'], 'nc/teacher_nc1') == ([], [])
    aps = plot_study.per_class_ap(det)
    assert aps['kd'] == pytest.approx({'circle': 0.26 / 3, 'square': 0.52 / 3, 'triangle': 0.26})


def test_histories_without_increasing_steps_are_numbered():
    """An iteration-based run logged by epoch has every validation at step 0: its validations are numbered."""
    runs = [dict(history=[{'step': 0, 'm': 1.0}, {'step': 0, 'm': 3.0}]),
            dict(history=[{'step': 0, 'm': 2.0}, {'step': 0, 'm': 4.0}])]
    assert plot_study.mean_curve(runs, 'm') == ([1, 2], [1.5, 3.5])
    assert plot_study.is_numbered(runs) and not plot_study.is_numbered([dict(history=[{'step': 5}, {'step': 9}])])
    assert plot_study.history_steps([{'step': 5}, {'step': 10}]) == ([5, 10], False)


def test_writes_valid_pngs_and_prints_their_paths(results, tmp_path):
    path, _ = results
    out = tmp_path / 'figs'
    proc = subprocess.run([sys.executable, 'tools/analysis/plot_study.py', str(path.parent), '--out', str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    printed = proc.stdout.split()
    expected = {f'det_{n}.png' for n in ('metric', 'val_curves', 'nc', 'per_class_ap')} | \
        {'cls_metric.png', 'cls_val_curves.png'}  # no NC or per-class keys in the cls run
    assert {osp.basename(p) for p in printed} == expected
    for p in printed:
        assert osp.dirname(p) == str(out)
        with Image.open(p) as im:
            im.verify()
            assert im.format == 'PNG'
        with Image.open(p) as im:
            assert im.size[0] > 300 and im.size[1] > 200
            assert len(np.unique(np.asarray(im.convert('L')))) > 10  # something was drawn


def test_bad_results_file_names_the_line(tmp_path):
    bad = tmp_path / 'results.jsonl'
    bad.write_text(json.dumps(dict(study='det', method='nd', seed=0, metric=0.1)) + '\n')
    with pytest.raises(ValueError, match=r'results.jsonl:1 lacks \[\'metric_name\'\]'):
        plot_study.load_results(str(bad))
    with pytest.raises(FileNotFoundError, match='run the study first'):
        plot_study.load_results(str(tmp_path / 'missing.jsonl'))
    with pytest.raises(SystemExit, match='is not JSON'):
        bad.write_text('{"study": \n')
        plot_study.main([str(tmp_path)])
