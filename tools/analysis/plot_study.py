"""Figures of a detection or classification study: final metric per method, validation curves, neural-collapse
metrics over training and per-class AP.

    python tools/analysis/plot_study.py STUDY_LOG_DIR [--out DIR] [--results FILE]

Reads ``STUDY_LOG_DIR/results.jsonl`` (``--results`` to name another file), one JSON object per finished run, as
the study scripts write it::

    {"study": "det" | "cls", "method": "baseline" | "teacher" | "kd" | ..., "seed": 0,
     "metric_name": "coco/bbox_mAP", "metric": 0.31, "metrics": {every final validation metric},
     "history": [{"step": 500, "coco/bbox_mAP": 0.2, "nc/student_nc1": 3.1, ...}, ...], "seconds": 812.0}

and writes, for each study found, next to the results file (or into ``--out``), printing each path:

* ``<study>_metric.png``: the final metric of every method, mean ± sample standard deviation (ddof=1) over
  seeds as error bars (none for a method with one seed), every seed as a dot (the teacher too, if the study has
  a ``teacher`` run);
* ``<study>_val_curves.png``: the validation metric over training steps, mean over seeds, per method;
* ``<study>_nc.png``: NC1, NC2 and NC3 over training (``DistillMetricsHook``'s ``nc/student_nc*`` per method,
  mean over seeds, and ``nc/teacher_nc*`` dashed), when the runs logged them;
* ``<study>_per_class_ap.png`` (detection, when the runs logged ``coco/<class>_precision``, i.e. the evaluator
  had ``classwise=True``): per-class AP of the teacher, the student alone (``baseline``) and the best method,
  chosen among the methods that have every seed of the study.
"""
import argparse
import json
import math
import os
import os.path as osp
import statistics
import sys
from collections import defaultdict
from typing import Dict, List, Optional, Sequence, Tuple

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402

REQUIRED = ('study', 'method', 'seed', 'metric_name', 'metric')
NC_KEYS = ('nc1', 'nc2', 'nc3')
STUDENT_ALONE, TEACHER = 'baseline', 'teacher'
PER_CLASS_SUFFIX = '_precision'


# ---------------------------------------------------------------------------------------------- data
def load_results(path: str) -> List[dict]:
    """The runs of a ``results.jsonl``; ValueError naming the line for a malformed or incomplete record."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path} does not exist: run the study first (tools/analysis/det_study.py or '
                                f'cls_study.py write STUDY_LOG_DIR/results.jsonl), or pass --results FILE.')
    runs = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                run = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f'{path}:{number} is not JSON ({e}); each line must be one run\'s record.') from None
            missing = [k for k in REQUIRED if k not in run]
            if missing:
                raise ValueError(f'{path}:{number} lacks {missing}; each record needs {list(REQUIRED)}.')
            runs.append(run)
    if not runs:
        raise ValueError(f'{path} holds no runs.')
    return runs


def by_study(runs: Sequence[dict]) -> Dict[str, List[dict]]:
    out = defaultdict(list)
    for run in runs:
        out[run['study']].append(run)
    return dict(out)


def method_order(runs: Sequence[dict]) -> List[str]:
    """Teacher, student alone, then the other methods in the order they first appear."""
    seen = list(dict.fromkeys(r['method'] for r in runs))
    head = [m for m in (TEACHER, STUDENT_ALONE) if m in seen]
    return head + [m for m in seen if m not in head]


def summarize_metric(runs: Sequence[dict]) -> Dict[str, dict]:
    """Per method: ``values`` (sorted by seed), ``seeds``, ``mean`` and ``std`` (sample std, ddof=1; None for a
    single seed: no error bar), over the runs' final ``metric``."""
    groups = defaultdict(list)
    for run in runs:
        groups[run['method']].append((run['seed'], float(run['metric'])))
    out = {}
    for method in method_order(runs):
        pairs = sorted(groups[method])
        values = [v for _, v in pairs]
        out[method] = dict(seeds=[s for s, _ in pairs], values=values, mean=statistics.fmean(values),
                           std=statistics.stdev(values) if len(values) > 1 else None)
    return out


def history_steps(history: Sequence[dict]) -> Tuple[List[int], bool]:
    """The x position of each validation entry: its ``step`` when the steps increase strictly, else (e.g. an
    iteration-based run logged with ``LoggerHook(log_metric_by_epoch=True)``, where every step is the epoch, 0)
    the validation's number 1, 2, ...; and whether the numbers were used."""
    steps = [entry.get('step') for entry in history]
    if all(isinstance(s, int) for s in steps) and all(b > a for a, b in zip(steps, steps[1:])):
        return steps, False
    return list(range(1, len(steps) + 1)), True


def mean_curve(runs: Sequence[dict], key: str) -> Tuple[List[int], List[float]]:
    """Steps (see :func:`history_steps`) and the mean over runs of ``key`` at each step of the runs'
    ``history`` (a step averages the runs that logged ``key`` there)."""
    at = defaultdict(list)
    for run in runs:
        history = run.get('history') or []
        for x, entry in zip(history_steps(history)[0], history):
            value = entry.get(key)
            if isinstance(value, (int, float)) and math.isfinite(value):
                at[x].append(float(value))
    steps = sorted(at)
    return steps, [statistics.fmean(at[s]) for s in steps]


def is_numbered(runs: Sequence[dict]) -> bool:
    """Whether some run's validations are numbered rather than stepped (see :func:`history_steps`)."""
    return any(history_steps(r.get('history') or [])[1] for r in runs)


def per_class_ap(runs: Sequence[dict]) -> Dict[str, Dict[str, float]]:
    """Per method: class name -> AP mean over seeds, from ``metrics['coco/<class>_precision']``."""
    sums = defaultdict(lambda: defaultdict(list))
    for run in runs:
        for key, value in (run.get('metrics') or {}).items():
            if key.startswith('coco/') and key.endswith(PER_CLASS_SUFFIX) and isinstance(value, (int, float)):
                sums[run['method']][key[len('coco/'):-len(PER_CLASS_SUFFIX)]].append(float(value))
    return {m: {c: statistics.fmean(v) for c, v in classes.items()} for m, classes in sums.items()}


def best_method(summary: Dict[str, dict], exclude: Sequence[str] = (TEACHER, STUDENT_ALONE)) -> Optional[str]:
    """The method with the highest mean metric among those not excluded that have every seed of the study (the
    seeds of any non-teacher method): a mean over fewer seeds is not comparable."""
    all_seeds = set().union(*(summary[m]['seeds'] for m in summary if m != TEACHER)) if summary else set()
    candidates = [m for m in summary if m not in exclude and set(summary[m]['seeds']) >= all_seeds]
    return max(candidates, key=lambda m: summary[m]['mean']) if candidates else None


# ---------------------------------------------------------------------------------------------- figures
def _colours(methods: Sequence[str]) -> Dict[str, tuple]:
    cmap = plt.get_cmap('tab10')
    return {m: cmap(i % 10) for i, m in enumerate(methods)}


def metric_figure(summary: Dict[str, dict], metric_name: str, title: str):
    """The figure of :func:`plot_metric`: a bar at each method's mean, an error bar of ± its sample std only
    where it has two seeds or more, its seeds as dots."""
    methods = list(summary)
    colours = _colours(methods)
    fig, ax = plt.subplots(figsize=(1.2 * len(methods) + 2, 4))
    for x, m in enumerate(methods):
        s = summary[m]
        ax.bar(x, s['mean'], color=colours[m], alpha=0.35, width=0.6)
        if s['std'] is not None and len(s['values']) > 1:
            ax.errorbar(x, s['mean'], yerr=s['std'], fmt='o', color=colours[m], capsize=6, markersize=6)
        else:  # one seed: no spread to show
            ax.plot(x, s['mean'], 'o', color=colours[m], markersize=6)
        n = len(s['values'])
        ax.scatter([x + 0.25 * (i - (n - 1) / 2) / max(1, n - 1) for i in range(n)], s['values'], color='k', s=12,
                   zorder=3)
    ax.set_xticks(range(len(methods)), [f'{m}\n(n={len(summary[m]["values"])})' for m in methods])
    ax.set_ylabel(metric_name)
    ax.set_title(f'{title}: mean ± sample std over seeds (n >= 2), dots = seeds')
    ax.grid(axis='y', alpha=0.3)
    return fig


def plot_metric(summary: Dict[str, dict], metric_name: str, title: str, path: str) -> str:
    return _save(metric_figure(summary, metric_name, title), path)


def draw_curves(ax, series: Sequence[Tuple[str, Sequence[dict], str, dict]]) -> list:
    """Draws ``(label, runs, key, plot kwargs)`` mean curves on ``ax``; returns the line handles. Curves of runs
    logged without increasing steps are drawn against the validation number, on a second x axis (top) when
    other curves have steps."""
    curves = [(label, *mean_curve(runs, key), is_numbered(runs), kw) for label, runs, key, kw in series]
    curves = [c for c in curves if c[1]]
    mixed = any(c[3] for c in curves) and not all(c[3] for c in curves)
    top = ax.twiny() if mixed else None
    handles = []
    for label, steps, values, numbered, kw in curves:
        target = top if numbered and mixed else ax
        handles += target.plot(steps, values, label=label + (' (by validation number, top axis)' if numbered and
                                                             mixed else ''), **kw)
    ax.set_xlabel('validation number (the log has no increasing steps)' if curves and all(c[3] for c in curves)
                  else 'step')
    if top is not None:
        top.set_xlabel('validation number')
    return handles


def plot_curves(runs: Sequence[dict], metric_name: str, title: str, path: str) -> Optional[str]:
    methods = method_order(runs)
    colours = _colours(methods)
    fig, ax = plt.subplots(figsize=(7, 4))
    handles = draw_curves(ax, [(m, [r for r in runs if r['method'] == m], metric_name,
                                dict(marker='o', markersize=3, color=colours[m])) for m in methods])
    if not handles:
        plt.close(fig)
        return None
    ax.set_ylabel(metric_name)
    ax.set_title(f'{title}: validation {metric_name}, mean over seeds')
    ax.legend(handles=handles, fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_nc(runs: Sequence[dict], title: str, path: str) -> Optional[str]:
    methods = method_order(runs)
    colours = _colours(methods)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    drawn = []
    for ax, nc in zip(axes, NC_KEYS):
        series = [('teacher (trained alone)' if m == TEACHER else f'{m} (student)',
                   [r for r in runs if r['method'] == m], f'nc/student_{nc}',
                   dict(marker='o', markersize=3, color=colours[m])) for m in methods]
        series.append(('teacher (in the distillation runs)', [r for r in runs if r['method'] != TEACHER],
                       f'nc/teacher_{nc}', dict(linestyle='--', color='k')))
        handles = draw_curves(ax, series)
        drawn.append(handles)
        ax.set_title(nc.upper())
        ax.grid(alpha=0.3)
        if nc == 'nc1' and handles:
            ax.set_yscale('log')
    if not any(drawn):
        plt.close(fig)
        return None
    axes[0].legend(handles=max(drawn, key=len), fontsize=8)
    fig.suptitle(f'{title}: neural-collapse metrics on the validation probe (lower = more collapsed)')
    return _save(fig, path)


def plot_per_class(aps: Dict[str, Dict[str, float]], methods: Sequence[str], title: str, path: str,
                   best: Optional[str] = None) -> Optional[str]:
    methods = [m for m in dict.fromkeys(methods) if m in aps]
    if not methods:
        return None
    classes = list(dict.fromkeys(c for m in methods for c in aps[m]))
    width = 0.8 / len(methods)
    colours = _colours(methods)
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(classes) + 2), 4))
    for i, m in enumerate(methods):
        xs = [j + (i - (len(methods) - 1) / 2) * width for j in range(len(classes))]
        ax.bar(xs, [aps[m].get(c, float('nan')) for c in classes], width=width, color=colours[m],
               label=f'{m} (best method)' if m == best else m)
    ax.set_xticks(range(len(classes)), classes, rotation=45 if len(classes) > 8 else 0, ha='right')
    ax.set_ylabel('AP (mean over seeds)')
    ax.set_title(f'{title}: per-class AP')
    ax.legend()
    ax.grid(axis='y', alpha=0.3)
    return _save(fig, path)


def _save(fig, path: str) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_study(runs: Sequence[dict], out_dir: str) -> List[str]:
    """Every figure of every study in ``runs`` into ``out_dir``; returns the paths written."""
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for study, study_runs in by_study(runs).items():
        metric_name = study_runs[0]['metric_name']
        other = {r['metric_name'] for r in study_runs} - {metric_name}
        if other:
            raise ValueError(f'study {study!r} mixes metrics {sorted(other | {metric_name})}; one study, one metric.')
        summary = summarize_metric(study_runs)
        title = f'{study} study'
        paths.append(plot_metric(summary, metric_name, title, osp.join(out_dir, f'{study}_metric.png')))
        curves = plot_curves(study_runs, metric_name, title, osp.join(out_dir, f'{study}_val_curves.png'))
        nc = plot_nc(study_runs, title, osp.join(out_dir, f'{study}_nc.png'))
        aps = per_class_ap(study_runs)
        best = best_method(summary)
        chosen = [m for m in (TEACHER, STUDENT_ALONE, best) if m]
        per_class = plot_per_class(aps, chosen, title, osp.join(out_dir, f'{study}_per_class_ap.png'), best) \
            if aps else None
        paths += [p for p in (curves, nc, per_class) if p]
    return paths


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('log_dir', help='the study\'s log folder (holding results.jsonl)')
    parser.add_argument('--results', help='results file (default: LOG_DIR/results.jsonl)')
    parser.add_argument('--out', help='folder of the figures (default: the results file\'s folder)')
    return parser.parse_args(argv)


def main(argv=None) -> List[str]:
    args = parse_args(argv)
    results = args.results or osp.join(args.log_dir, 'results.jsonl')
    try:
        runs = load_results(results)
        paths = plot_study(runs, args.out or osp.dirname(osp.abspath(results)))
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f'plot_study: {e}')
    for path in paths:
        print(path)
    return paths


if __name__ == '__main__':
    main()
