"""mmkd's demo (``make demo``, ``tools/analysis/run_demo.py``): the detection study's seed-0 runs of the teacher,
the student alone, KD, KD++ and ReviewKD++ (:mod:`mmkd.analysis.det_study`, whose options all work here), then one
dense pair: a GFL R18-FPN student alone (the dense study's seed-0 run) and with CrossKD, the dense study's best
method, from a short GFL R50-FPN teacher whose backbone starts from the Faster R-CNN teacher's
(``configs/demo/gfl_r50_teacher_demo.py``); then both tables and the pictures (``tools/analysis/plot_study.py``).

The dense pair shares the Faster R-CNN part's data, places, threads, seeds and iteration overrides; its runs go to
``<work-dir>/dense`` and its table and pictures to ``<out>/dense``. ``--dense-rows`` chooses its rows (none: no
dense pair)."""
import argparse
import json
import os.path as osp
import shlex
import subprocess
import sys
from typing import List, Optional

from . import det_study
from .study import FINISHED, RECORD, REPO

# The shipped methods with the study's schedule: the demo's rows are the studies' seed-0 runs.
DEMO_ROWS = det_study.DEMO_ROWS
DEFAULTS = dict(rows=DEMO_ROWS, seeds=[0], default_work_dir='work_dirs/demo')
DENSE_DEMO_ROWS = ['baseline', 'crosskd']
DENSE_DEMO_TEACHER = 'gfl_r50_teacher_demo.py'
# the Faster R-CNN part's options the dense pair takes over (the data, how runs are placed, the seeds and schedules)
SHARED = ('num_train', 'num_heldout', 'num_val', 'img_size', 'num_classes', 'min_object_size', 'data_seed',
          'data_root', 'eval_on', 'seeds', 'jobs', 'teacher_procs', 'threads', 'deterministic', 'student_iters',
          'teacher_iters', 'force', 'dry_run', 'report')
SCRIPT = 'tools/analysis/run_demo.py'


def demo_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument('--dense-rows', nargs='*', default=DENSE_DEMO_ROWS, choices=list(det_study.DENSE_ROWS),
                   help=f'the dense pair\'s rows (default: {" ".join(DENSE_DEMO_ROWS)}; none: no dense pair)')
    return p


def dense_defaults(args: argparse.Namespace, rows: List[str], fr_teacher: Optional[dict]) -> dict:
    """det_study's settings of the dense pair after the Faster R-CNN part parsed as ``args``: the shared options,
    ``rows`` of the GFL family, the demo's dense teacher starting from the Faster R-CNN teacher's checkpoint
    (whose record ``fr_teacher``, when there is one, is part of the dense teacher's key)."""
    out = {k: getattr(args, k) for k in SHARED}
    out.update(family='gfl', rows=list(rows), teacher_config=DENSE_DEMO_TEACHER,
               work_dir=osp.join(args.work_dir, 'dense'), out=osp.join(args.out, 'dense'),
               teacher_cfg_options=[f'model.backbone.init_cfg.checkpoint={det_study.teacher_checkpoint(args)}'],
               teacher_init={k: fr_teacher.get(k) for k in ('key', FINISHED)} if fr_teacher else None)
    return out


def finished_teacher(args: argparse.Namespace) -> Optional[dict]:
    """The record of the Faster R-CNN teacher's finished run (this call's or an earlier one's), ``None`` if its
    record or its last checkpoint is missing."""
    try:
        with open(osp.join(args.teacher_dir, RECORD)) as f:
            record = json.load(f)
    except (OSError, ValueError):
        return None
    return record if osp.isfile(det_study.teacher_checkpoint(args)) else None


def pictures(out: str, prefix: str) -> None:
    plot = osp.join(REPO, 'tools', 'analysis', 'plot_study.py')
    if osp.isfile(plot) and subprocess.run([sys.executable, plot, out], cwd=REPO, check=False).returncode == 0:
        print(f'Pictures: {out}/{prefix}_*.png', flush=True)


def main(argv=None) -> dict:
    """The demo; exits 1 (after the tables and the pictures) if a run failed."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if {'-h', '--help'} & set(argv):
        print(f'{SCRIPT}: the options of tools/analysis/det_study.py (below; they set the Faster R-CNN rows and the '
              f'data, places and schedules both parts share), and\n')
        demo_parser().print_help()
        print()
    own, argv = demo_parser().parse_known_args(argv)
    command = shlex.join(['python', SCRIPT, *argv] + (['--dense-rows', *own.dense_rows]
                                                       if own.dense_rows != DENSE_DEMO_ROWS else []))
    args = det_study.parse_args(argv, DEFAULTS)
    result = det_study.main(argv, defaults=DEFAULTS, script=SCRIPT, command=command)
    dense = {}
    if own.dense_rows:
        teacher = finished_teacher(args)
        if teacher is None and not (args.dry_run or args.report):
            print(f'\nThe dense pair is not run: its teacher starts from the Faster R-CNN teacher\'s checkpoint '
                  f'{det_study.teacher_checkpoint(args)}, which is not there (the teacher failed, see above, or '
                  f'--rows asked for no row that needs it).', file=sys.stderr, flush=True)
            result['failures'] = list(result['failures']) + [dict(method='dense pair', seed=0, error='not run')]
        else:
            dense = det_study.main([], defaults=dense_defaults(args, own.dense_rows, teacher), script=SCRIPT,
                                   command=command)
    if not result:
        return result
    for part, prefix in ((result, 'det'), (dense, 'dense')):
        if part and (part['rows'] or part['teacher']):
            pictures(part['out'], prefix)
    print('\nNext: tools/dist_train.sh and tools/slurm_train.sh use this checkout\'s .venv by themselves, e.g. '
          '`tools/dist_train.sh configs/faster_rcnn_r101_r50_nd.py 8`; activate it (`source .venv/bin/activate`) '
          'before any `python tools/...` command.', flush=True)
    failures = list(result['failures']) + list(dense.get('failures', []))
    if failures:
        print(f'{len(failures)} run(s) failed: see the tables above and their logs.', file=sys.stderr)
        sys.exit(1)
    result['dense'] = dense
    return result
