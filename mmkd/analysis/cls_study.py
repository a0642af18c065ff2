"""The CPU classification study: a resnet20 teacher, then resnet8 students (alone, KD, KD++, DKD, DKD++, NC alone
and + KD, iCD as released, and iCD with the task at full weight if asked) over several seeds on the synthetic
shapes set (10 classes; generated at 32x32, downsampled to 16x16 by the configs' pipelines), summarised as mean ±
std of the final top-1 and the paired Δ against the student alone and against each method's base (KD for KD++,
NC + KD and iCD; DKD for DKD++). The command line is ``tools/analysis/cls_study.py``.

    python tools/analysis/cls_study.py [--seeds 0 1 2] [--methods baseline kd kdpp dkd dkdpp nc nc_kd icd] \\
        [--work-dir work_dirs/cls_study] [--num-train 10000] [--num-heldout 2000] [--num-test 5000] [--epochs E] \\
        [--teacher-epochs E] [--validations 4] [--threads 2] [--jobs 1] [--variant NAME METHOD KEY=VALUE ...] \\
        [--eval-on heldout] [--dry-run] [--report]

The data is generated (or reused) under ``--data-root``: ``--num-train`` + ``--num-heldout`` training images, of
which every run trains on the first ``--num-train`` (``CIFAR100(index_range=...)``), and ``--num-test`` test
images, the reported split. ``--eval-on heldout`` evaluates on the held-out training images instead, for choosing
the schedule (on the student-alone row) and tuning a method's weights (at most 4 values, one seed): never on the
test images. Its runs go to ``<work-dir>_heldout`` (default ``work_dirs/cls_study_heldout``) and share the
reported study's teacher (``work_dirs/cls_study/teacher``), whose training never sees the held-out images.

The teacher (seed 0) trains once into ``--teacher-dir``, each student into ``<work-dir>/<method>_seed<S>``, every
run as a ``tools/train.py`` subprocess (log: ``<run>/train.log``) through :class:`mmkd.analysis.study.StudyRunner`.
A run whose final checkpoint and record (``<run>/study_run.json``: top-1, wall time, the command) match the
present arguments is skipped, so an interrupted study resumes where it stopped; a failed run is listed with its
log, the others go on and the command exits 1 at the end. The configs are
``configs/cls/synthetic/{res20_teacher,res8_baseline,<method>_res20_res8}_synthetic.py`` (:data:`ROWS`). The
results (``--out`` markdown, the same name with ``.json``, and ``results.jsonl`` next to it for ``plot_study.py``)
include the wall time of every run and the whole study's. Every run validates ``--validations`` times (every
``max(1, epochs // validations)`` epochs and after the last), for the curves, the NC metrics over training
(``mmkd.DistillMetricsHook`` in the configs) and the plateau check: the table's "last ¼ Δ" is the change of top-1
over the last quarter of the schedule, mean over seeds.

``--variant NAME METHOD KEY=VALUE ...`` (repeatable) adds a row NAME: METHOD's config with those
``--cfg-options`` (trained into ``<work-dir>/<NAME>_seed<S>``, compared with METHOD's base), e.g. a weight::

    python tools/analysis/cls_study.py --eval-on heldout --seeds 0 --methods nc \\
        --variant nc_w0.1 nc model.distiller.distill_losses.loss_nc.loss_weight=0.1

``--report`` trains nothing: it rebuilds the ``--out`` markdown and its ``.json`` from ``results.jsonl`` next to
them (every run recorded there, rows in :data:`ROWS` order, then any other row in the file's order, compared with
the base of the row whose config it uses), e.g. ``--report --out tools/analysis/logs/cls_study/results.md``. The
command, machine, total time and provenance come from the ``.json`` already there (the study that trained the
runs), when there is one.
"""
import argparse
import json
import math
import os
import os.path as osp
import platform
import shlex
import statistics
import sys
import time
from collections import namedtuple
from typing import Dict, Mapping, Optional, Sequence

from .study import (REPO, Job, StudyRunner, cpu_name, format_delta, format_value, last_quarter_change, paired_delta,
                    newer_record, relpath, rewrite_results, seed_summary, validation_records)

CONFIG_DIR = 'configs/cls/synthetic'
TEACHER = 'res20_teacher_synthetic.py'
Row = namedtuple('Row', 'config label base')
# a row of a given study: a shipped row, or a --variant (its method's config and base, with extra --cfg-options)
StudyRow = namedtuple('StudyRow', 'config extra label base')
# row -> (config, label, paired base: the row the method adds to); every row is also compared with the student alone
ROWS = dict(
    baseline=Row('res8_baseline_synthetic.py', 'student resnet8 alone', None),
    kd=Row('kd_res20_res8_synthetic.py', 'KD', 'baseline'),
    kdpp=Row('kdpp_res20_res8_synthetic.py', 'KD++ (ND + KD)', 'kd'),
    dkd=Row('dkd_res20_res8_synthetic.py', 'DKD', 'baseline'),
    dkdpp=Row('dkdpp_res20_res8_synthetic.py', 'DKD++ (ND + DKD)', 'dkd'),
    nc=Row('nc_res20_res8_synthetic.py', 'NC alone [PROPOSAL]', 'baseline'),
    nc_kd=Row('nc_kd_res20_res8_synthetic.py', 'NC + KD [PROPOSAL]', 'kd'),
    icd=Row('icd_res20_res8_synthetic.py', 'iCD as released (0.1 CE + 0.9 SDD-KD + iCD)', 'kd'),
    icd_full=Row('icd_full_res20_res8_synthetic.py', 'iCD, task at full weight (CE 1 + 0.9 SDD-KD + iCD)', 'kd'),
    # iCD with plain KD on the global logits in place of the released SDD multi-region KD (mmkd's first recipe)
    icd_plainkd=Row('icd_plainkd_res20_res8_synthetic.py', 'iCD + plain KD, not the released KD term (0.1 CE + '
                    '0.9 KD + iCD)', 'kd'),
    icd_full_plainkd=Row('icd_full_plainkd_res20_res8_synthetic.py', 'iCD + plain KD, task at full weight (CE 1 + '
                         '0.9 KD + iCD)', 'kd'),
)
# the study's rows, fixed before any result (iCD with the task at full weight only if the held-out split favours it)
STUDY_ROWS = ['baseline', 'kd', 'kdpp', 'dkd', 'dkdpp', 'nc', 'nc_kd', 'icd']
METHODS = {name: row.config for name, row in ROWS.items()}
STUDENT_ALONE = 'baseline'
METRIC = 'accuracy/top1'


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--methods', nargs='+', default=list(STUDY_ROWS), choices=list(ROWS),
                        help=f'student rows (default: {" ".join(STUDY_ROWS)})')
    parser.add_argument('--work-dir', help='default: work_dirs/cls_study (+ _heldout with --eval-on heldout)')
    parser.add_argument('--data-root', help='synthetic data folder (default: work_dirs/cls_study/data, or '
                        '<work-dir>/data when --work-dir is given)')
    parser.add_argument('--teacher-dir', help='the teacher\'s work dir (default: work_dirs/cls_study/teacher, or '
                        '<work-dir>/teacher when --work-dir is given); a teacher that an earlier study trained '
                        'there on the same data and epochs is reused')
    parser.add_argument('--num-train', type=int, default=10000, help='training images (every run trains on these)')
    parser.add_argument('--num-heldout', type=int, default=2000,
                        help='more training-distribution images, never trained on: the --eval-on heldout split')
    parser.add_argument('--num-test', type=int, default=5000, help='test images (the reported split)')
    parser.add_argument('--eval-on', choices=['test', 'heldout'], default='test',
                        help='heldout: evaluate on the held-out training images (for tuning; never tune on test)')
    parser.add_argument('--epochs', type=int, help='student epochs (default: the configs\' max_epochs)')
    parser.add_argument('--teacher-epochs', type=int, help='teacher epochs (default: the config\'s max_epochs)')
    parser.add_argument('--validations', type=int, default=4,
                        help='validations per run: every max(1, epochs // N) epochs and after the last')
    parser.add_argument('--threads', type=int, default=2, help='torch threads per run (OMP/MKL_NUM_THREADS)')
    parser.add_argument('--jobs', type=int, default=1, help='runs side by side')
    parser.add_argument('--out', help='results markdown (default: <work-dir>/results.md)')
    parser.add_argument('--variant', nargs='+', action='append', default=[], metavar='NAME METHOD KEY=VALUE',
                        help='an extra row NAME: METHOD\'s config with these --cfg-options (repeatable)')
    parser.add_argument('--deterministic', action='store_true', help='mmengine randomness.deterministic=True '
                        '(on a CPU, a fixed --threads is what makes reruns bit-identical)')
    parser.add_argument('--dry-run', action='store_true', help='print the training commands only')
    parser.add_argument('--report', action='store_true', help='train nothing: rebuild --out (and its .json) from '
                        'the results.jsonl next to it')
    args = parser.parse_args(argv)
    args.rows = {m: StudyRow(ROWS[m].config, [], ROWS[m].label, ROWS[m].base) for m in args.methods}
    for name, *rest in args.variant:
        if len(rest) < 2 or rest[0] not in METHODS or any('=' not in opt for opt in rest[1:]):
            parser.error(f'--variant {name} {" ".join(rest)}: expected NAME METHOD KEY=VALUE [KEY=VALUE ...] with '
                         f'METHOD in {list(METHODS)}')
        if name in args.rows or name in ROWS or name == 'teacher':
            parser.error(f'--variant {name}: the name is taken; choose another')
        row = ROWS[rest[0]]
        args.rows[name] = StudyRow(row.config, rest[1:], f'{row.label}, {" ".join(rest[1:])}', row.base)
    for name in ('num_train', 'num_test', 'epochs', 'teacher_epochs', 'validations', 'threads', 'jobs'):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f'--{name.replace("_", "-")} must be >= 1')
    if args.num_heldout < 0 or (args.eval_on == 'heldout' and args.num_heldout < 1):
        parser.error('--num-heldout must be >= 0, and >= 1 with --eval-on heldout')
    if len(set(args.seeds)) != len(args.seeds):
        parser.error(f'--seeds lists a seed twice: {args.seeds}')
    shared = args.work_dir or 'work_dirs/cls_study'  # the reported study's folder: its data and teacher
    args.work_dir = osp.abspath(args.work_dir or shared + ('_heldout' if args.eval_on == 'heldout' else ''))
    args.data_root = osp.abspath(args.data_root or osp.join(shared, 'data'))
    args.teacher_dir = osp.abspath(args.teacher_dir or osp.join(shared, 'teacher'))
    args.out = osp.abspath(args.out or osp.join(args.work_dir, 'results.md'))
    return args


def max_epochs(config: str, override) -> int:
    from mmengine.config import Config
    return override or Config.fromfile(osp.join(REPO, config)).train_cfg.max_epochs


def schedule_options(config: str, epochs: int) -> list:
    """--cfg-options that stretch ``config``'s schedule to ``epochs``: ``max_epochs``, the checkpoint interval and
    the LR schedule (a cosine's ``T_max``/``end``; a multi-step schedule's milestones at the same fractions of the
    schedule, rounded up)."""
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(REPO, config))
    opts = [f'{key}={epochs}' for key in ('train_cfg.max_epochs', 'default_hooks.checkpoint.interval')]
    scheduler, old = cfg.param_scheduler, cfg.train_cfg.max_epochs
    if scheduler.type == 'CosineAnnealingLR':
        opts += [f'param_scheduler.{key}={epochs}' for key in ('T_max', 'end')]
    elif scheduler.type == 'MultiStepLR':
        milestones = [min(epochs, math.ceil(m * epochs / old)) for m in scheduler.milestones]
        opts.append(f'param_scheduler.milestones=[{",".join(map(str, milestones))}]')
    else:
        raise ValueError(f'{config}: --epochs cannot stretch a {scheduler.type} schedule (cosine or multi-step only)')
    return opts


def heldout_options(args) -> list:
    """--cfg-options that evaluate on the held-out training images (those after the first ``num_train``)."""
    span = f'[{args.num_train},{args.num_train + args.num_heldout}]'
    return [f'{loader}.dataset.{key}' for loader in ('val_dataloader', 'test_dataloader')
            for key in ('split=train', f'index_range={span}', 'test_mode=True')]


def val_interval(epochs: int, validations: int) -> int:
    """Epochs between validations for ``validations`` of them in ``epochs`` (mmengine also validates after the
    last epoch)."""
    return max(1, epochs // validations)


def train_command(config: str, work_dir: str, seed: int, args, epochs, teacher_ckpt=None, extra=(),
                  evaluate_on_heldout: bool = False, val_every: Optional[int] = None) -> list:
    """``tools/train.py`` with the data root, the training images (the first ``num_train``), the evaluation split,
    seed, (optional) epochs, validation interval and teacher checkpoint overridden, then the ``extra`` options."""
    opts = [f'{loader}.dataset.data_root={args.data_root}' for loader in ('train_dataloader', 'val_dataloader',
                                                                          'test_dataloader')]
    opts.append(f'train_dataloader.dataset.index_range=[0,{args.num_train}]')  # never the held-out images
    opts += heldout_options(args) if evaluate_on_heldout else []
    opts.append(f'randomness.seed={seed}')
    if args.deterministic:
        opts.append('randomness.deterministic=True')
    if epochs is not None:  # the config's schedule stretched to ``epochs``, saved at the end
        opts += schedule_options(config, epochs)
    if val_every is not None:
        opts.append(f'train_cfg.val_interval={val_every}')
    if teacher_ckpt:
        opts.append(f'model.teacher_ckpt={teacher_ckpt}')
    opts += list(extra)
    return [sys.executable, 'tools/train.py', config, '--work-dir', work_dir, '--cfg-options', *opts]


def final_record(history: Sequence[dict], epochs: int) -> Optional[dict]:
    """The validation after the last epoch (``step`` = epoch) among ``history``, else ``None``."""
    final = [r for r in history if r.get('step') == epochs]
    return final[-1] if final else None


def final_top1(work_dir: str, epochs: int) -> Optional[float]:
    """Top-1 of the validation after the last epoch, from the newest run's mmengine ``scalars.json``."""
    final = final_record(validation_records(work_dir, METRIC), epochs)
    return final and final[METRIC]


def collect(work_dir: str, epochs: int) -> Optional[dict]:
    """The final top-1 of a finished run (its last checkpoint there), its final validation metrics and their
    history (every validation record, ``step`` = epoch: ``plot_study.py``'s curves, the plateau check), else
    ``None``."""
    history = validation_records(work_dir, METRIC)
    final = final_record(history, epochs)
    if final is None or not osp.isfile(osp.join(work_dir, f'epoch_{epochs}.pth')):
        return None
    return dict(metric_name=METRIC, metric=final[METRIC], top1=final[METRIC], history=history,
                metrics={k: v for k, v in final.items() if k.startswith(('accuracy/', 'nc/', 'distill/'))})


def summarise(top1: Mapping[str, Mapping[int, float]], seeds, baseline: Optional[str] = STUDENT_ALONE,
              bases: Optional[Mapping[str, Optional[str]]] = None) -> dict:
    """Per row: its seeds' ``n``, ``mean``, sample ``std`` (ddof=1; None for one seed), the seeds ``missing``,
    the paired Δ against ``baseline`` over the seeds both have (``delta``, its standard error ``delta_se`` and
    ``delta_n``; None where there is no baseline) and the same against the row's base (``bases[row]``, e.g. KD for
    KD++: ``base``, ``base_delta``, ``base_delta_se``, ``base_delta_n``, ``base_delta_text``)."""
    out = {}
    for method, values in top1.items():
        stats = seed_summary(values, seeds)
        d = paired_delta(values, top1[baseline], seeds) if baseline in top1 else None
        base = (bases or {}).get(method)
        b = paired_delta(values, top1[base], seeds) if base in top1 else None
        out[method] = dict(stats, delta=d and d['mean'], delta_se=d and d['se'], delta_n=d and d['n'],
                           delta_text=format_delta(d, '.2f') if d else '', base=base,
                           base_delta=b and b['mean'], base_delta_se=b and b['se'], base_delta_n=b and b['n'],
                           base_delta_text=f'{format_delta(b, ".2f")} vs {base}' if b else
                           (f'n/a ({base} not run)' if base else ''))
    return out


def fmt(x, spec='.2f', signed=False) -> str:
    return format_value(x, spec, signed)


def write_results(results: dict, out: str) -> str:
    t, seeds = results['teacher'], results['seeds']
    split = (f'{results["data"]["num_heldout"]} held-out training images (tuning split)'
             if results['eval_on'] == 'heldout' else f'{results["data"]["num_test"]} test images')
    lines = [f'# Classification study: {results["setup"]}', '',
             f'Final top-1 (%) on the {split}, after the last epoch.', '',
             '| method | config | ' + ' | '.join(f'seed {s}' for s in seeds) + ' | n | mean ± std '
             '| Δ vs baseline (paired) | Δ vs base (paired) | last ¼ Δ | wall (s/run) |',
             '|' + '---|' * (len(seeds) + 8),
             f'| teacher (seed {t["seed"]}) | {t["config"]} | '
             f'{fmt(t["top1"]) if t["top1"] is not None else "FAILED" if t["trained"] else "not needed"} |'
             + ' |' * (len(seeds) - 1) + f' 1 | {fmt(t["top1"])} | | | {fmt(t.get("last_quarter"), ".2f", True)} | '
             f'{fmt(t["wall_s"], ".0f")} |']
    failed = {(f['method'], f['seed']) for f in results['failures']}
    for method, r in results['methods'].items():
        walls = [w for w in r['wall_s'] if w is not None]
        cells = [fmt(v) if v is not None else 'FAILED' if (method, s) in failed else 'missing'
                 for s, v in zip(seeds, r['top1'])]
        std = f' ± {fmt(r["std"])}' if r['std'] is not None else ''
        lines.append(f'| {method} | {r["config"]} | ' + ' | '.join(cells) + f' | {r["n"]} | {fmt(r["mean"])}{std} | '
                     f'{r["delta_text"]} | {r["base_delta_text"]} | {fmt(r.get("last_quarter"), ".2f", True)} | '
                     f'{fmt(statistics.fmean(walls) if walls else None, ".0f")} |')
    lines += ['', 'std: sample standard deviation over seeds (ddof=1). Δ (paired): mean over the seeds both rows '
              'have of (row - reference) at the same seed ± its standard error (sample std / sqrt(n)), n seeds; '
              '"vs base": against the row the method adds to (KD for KD++, NC + KD and iCD; DKD for DKD++). '
              'Last ¼ Δ: the change of top-1 over the last quarter of the schedule (final minus the validation '
              'closest to 75%), mean over seeds: the plateau check.', '',
              'Rows: ' + '; '.join(f'{m}: {r["label"]}' for m, r in results['methods'].items()) + '.']
    if results.get('provenance'):
        lines += ['', results['provenance']]
    if results['failures']:
        lines += ['', f'Failed runs ({len(results["failures"])}):', '']
        lines += [f'- {f["method"]} seed {f["seed"]}: {f["error"]} (log: {relpath(f["log"])})'
                  for f in results['failures']]
    lines += ['', f'Command: `{results["command"]}`', '', f'Machine: {results["machine"]}', '']
    if results.get('total_s') is not None:
        lines += [f'Total time: {results["total_s"]:.0f} s ({results["total_s"] / 60:.1f} min).', '']
    text = '\n'.join(lines)
    os.makedirs(osp.dirname(out), exist_ok=True)
    with open(out, 'w') as f:
        f.write(text)
    with open(osp.splitext(out)[0] + '.json', 'w') as f:
        json.dump(results, f, indent=2)
    return text


def report(args, argv=None) -> dict:
    """``--report``: the results rebuilt from ``results.jsonl`` next to ``args.out`` (the newest record of each
    run), written to ``args.out`` and its ``.json``; nothing trains."""
    results_file = osp.join(osp.dirname(args.out), 'results.jsonl')
    if not osp.isfile(results_file):
        raise SystemExit(f'--report: no {results_file}; give --out (or --work-dir) of a study that has run')
    with open(results_file) as f:
        records = [json.loads(line) for line in f if line.strip()]
    runs = {}
    for r in records:  # the newer record of a (method, seed), as rewrite_results decides; equal times: the later line
        if (r['method'], r['seed']) not in runs or newer_record(r, runs[r['method'], r['seed']]):
            runs[r['method'], r['seed']] = r
    order = [m for m in ROWS if any(k[0] == m for k in runs)]
    order += [m for m in dict.fromkeys(r['method'] for r in records) if m not in order and m != 'teacher']
    by_config = {row.config: name for name, row in ROWS.items()}
    rows = {}
    for m in order:
        if m in ROWS:
            rows[m] = ROWS[m]
        else:  # a --variant: its method's config (the first word of its record's config) and base
            rec = next(r for r in records if r['method'] == m)
            method = by_config.get(rec['config'].split()[0])
            rows[m] = Row(rec['config'], rec.get('label', m), ROWS[method].base if method else None)
    previous = {}
    out_json = osp.splitext(args.out)[0] + '.json'
    if osp.isfile(out_json):
        with open(out_json) as f:
            previous = json.load(f)
    seeds = args.seeds
    top1 = {m: {s: runs[m, s]['top1'] for s in seeds if (m, s) in runs} for m in rows}
    stats = summarise(top1, seeds, bases={m: row.base for m, row in rows.items()})
    teacher = runs.get(('teacher', 0), {})
    t_epochs = previous.get('teacher', {}).get('epochs') or max_epochs(f'{CONFIG_DIR}/{TEACHER}', args.teacher_epochs)
    epochs = {m: previous.get('methods', {}).get(m, {}).get('epochs')
              or max_epochs(f'{CONFIG_DIR}/{row.config.split()[0]}', args.epochs) for m, row in rows.items()}
    results = dict(
        setup=f'resnet20 teacher (epochs: {t_epochs}) -> resnet8 students '
              f'(epochs: {", ".join(sorted({str(e) for e in epochs.values()}))}), synthetic shapes at '
              f'16x16 (10 classes, {args.num_train} training images)',
        data=previous.get('data', dict(root=args.data_root, num_train=args.num_train, num_heldout=args.num_heldout,
                                       num_test=args.num_test)),
        seeds=seeds, eval_on=args.eval_on,
        teacher=dict(config=TEACHER, seed=0, epochs=t_epochs, top1=teacher.get('top1'), trained=bool(teacher),
                     wall_s=teacher.get('seconds'), last_quarter=last_quarter_change([teacher], METRIC) if teacher
                     else None),
        methods={m: dict(config=row.config, label=row.label, epochs=epochs[m],
                         top1=[top1[m].get(s) for s in seeds],
                         wall_s=[runs[m, s]['seconds'] if (m, s) in runs else None for s in seeds],
                         last_quarter=last_quarter_change([runs[m, s] for s in seeds if (m, s) in runs], METRIC),
                         **stats[m])
                 for m, row in rows.items()},
        failures=[],
        command=previous.get('command') or shlex.join([osp.relpath(sys.executable, REPO),
                                                       'tools/analysis/cls_study.py',
                                                       *(sys.argv[1:] if argv is None else argv)]),
        machine=previous.get('machine', 'not recorded (--report of results.jsonl)'),
        total_s=previous.get('total_s'))
    if previous.get('provenance'):
        results['provenance'] = previous['provenance']
    print(write_results(results, args.out))
    return results


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.report:
        return report(args, argv)
    start = time.perf_counter()
    data = dict(num_train=args.num_train, num_heldout=args.num_heldout, num_test=args.num_test)
    t_cfg, t_dir = f'{CONFIG_DIR}/{TEACHER}', args.teacher_dir
    t_epochs = max_epochs(t_cfg, args.teacher_epochs)
    t_cmd = train_command(t_cfg, t_dir, 0, args, args.teacher_epochs,
                          val_every=val_interval(t_epochs, args.validations))
    t_key = dict(cmd=t_cmd[1:], data=data)
    t_ckpt = osp.join(t_dir, f'epoch_{t_epochs}.pth')
    info = dict(study='cls')
    # the teacher trains only when a row distils from it (a study of the student alone, e.g. choosing the schedule,
    # needs none)
    needs_teacher = any(row.config != METHODS['baseline'] for row in args.rows.values())
    jobs = [Job('teacher', 0, t_cmd, t_dir, t_key, collect=lambda wd, e=t_epochs: collect(wd, e),
                info=dict(info, config=TEACHER))] if needs_teacher else []
    epochs = {m: max_epochs(f'{CONFIG_DIR}/{row.config}', args.epochs) for m, row in args.rows.items()}
    for method, (config, extra, label, _) in args.rows.items():
        student_only = config == METHODS['baseline']
        for seed in args.seeds:
            work_dir = osp.join(args.work_dir, f'{method}_seed{seed}')
            cmd = train_command(f'{CONFIG_DIR}/{config}', work_dir, seed, args, args.epochs,
                                None if student_only else t_ckpt, extra, args.eval_on == 'heldout',
                                val_interval(epochs[method], args.validations))
            key = dict(cmd=cmd[1:], data=data, **({} if student_only else dict(teacher=t_key)))
            jobs.append(Job(method, seed, cmd, work_dir, key, collect=lambda wd, e=epochs[method]: collect(wd, e),
                            needs=None if student_only else ('teacher', 0),
                            info=dict(info, config=config, label=label)))
    results_file = osp.join(osp.dirname(args.out), 'results.jsonl')
    if not args.dry_run:
        from mmkd.datasets.synthetic import generate_cifar_like
        generate_cifar_like(args.data_root, seed=0, num_classes=10, num_workers=args.threads,
                            num_train=args.num_train + args.num_heldout, num_test=args.num_test)
        os.makedirs(osp.dirname(args.out), exist_ok=True)
    runner = StudyRunner(jobs=args.jobs, threads=args.threads, dry_run=args.dry_run,
                         results_file=None if args.dry_run else results_file)
    runs, failures = runner.run(jobs)
    if args.dry_run:
        return {}
    rewrite_results(results_file, [runs[job.id] for job in jobs if job.id in runs])  # each run once, nothing lost
    top1: Dict[str, Dict[int, float]] = {m: {s: runs[m, s]['top1'] for s in args.seeds if (m, s) in runs}
                                         for m in args.rows}
    stats = summarise(top1, args.seeds, bases={m: row.base for m, row in args.rows.items()})
    teacher = runs.get(('teacher', 0), {})
    import torch
    results = dict(
        setup=f'resnet20 teacher (epochs: {t_epochs}) -> resnet8 students '
              f'(epochs: {", ".join(sorted({str(e) for e in epochs.values()}))}), synthetic shapes at '
              f'16x16 (10 classes, {args.num_train} training images)',
        data=dict(root=args.data_root, **data), seeds=args.seeds, eval_on=args.eval_on,
        teacher=dict(config=TEACHER, seed=0, epochs=t_epochs, top1=teacher.get('top1'), trained=needs_teacher,
                     wall_s=teacher.get('seconds'), last_quarter=last_quarter_change([teacher], METRIC) if teacher
                     else None),
        methods={m: dict(config=' '.join([row.config, *row.extra]), label=row.label, epochs=epochs[m],
                         top1=[top1[m].get(s) for s in args.seeds],
                         wall_s=[runs[m, s]['seconds'] if (m, s) in runs else None for s in args.seeds],
                         last_quarter=last_quarter_change([runs[m, s] for s in args.seeds if (m, s) in runs], METRIC),
                         **stats[m])
                 for m, row in args.rows.items()},
        failures=failures,
        command=shlex.join([osp.relpath(sys.executable, REPO), 'tools/analysis/cls_study.py',
                            *(sys.argv[1:] if argv is None else argv)]),
        machine=f'{platform.platform()}, {cpu_name()}, {os.cpu_count()} CPUs, {args.jobs} run(s) side by side x '
                f'{args.threads} torch threads per run, torch {torch.__version__}, '
                f'python {platform.python_version()}',
        total_s=time.perf_counter() - start)
    print(write_results(results, args.out))
    return results


def cli(argv=None) -> dict:
    """:func:`main`, then exit status 1 if a run failed (after the results are written)."""
    results = main(argv)
    if results and results['failures']:
        print(f'{len(results["failures"])} run(s) failed: see the table above and their logs.', file=sys.stderr)
        sys.exit(1)
    return results
