"""The detection study's teacher evaluated on the held-out training images, at several schedules.

The teacher's schedule chosen on held-out data, as the studies' protocol asks (det_study's own teacher always
evaluates on the validation images it reports). Used for the 6-class data (data seed 1):

    python tools/analysis/tune_teacher.py 1500 3000

Each schedule trains as det_study trains its teacher (2 processes, seed 0; ``--teacher-iters`` scaling the LR step
and validations) into ``work_dirs/det_tune_<data>/heldout_t<iters>``; the records go to ``OUT/results.jsonl``
(method ``teacher_<iters>``; earlier records of other schedules are kept), the table to ``OUT/results.md``. ``--data``
takes det_study's data options (default: the 6-class data of seed 1); ``--out`` defaults to that study's
``teacher_tuning/`` log folder.
"""
import argparse
import os.path as osp
import shlex
import sys
from typing import List, Sequence

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)  # this checkout's mmkd
from mmkd.analysis import det_study  # noqa: E402
from mmkd.analysis.study import StudyRunner, format_value, rewrite_results  # noqa: E402

DEFAULT_DATA = '--data-seed 1 --num-classes 6'
DEFAULT_OUT = osp.join(REPO, 'tools/analysis/logs/det_study/other_data_c6_d1/teacher_tuning')


def study_args(iters: int, data: Sequence[str], work_root: str):
    """det_study's arguments for a teacher of ``iters`` iterations evaluated on the held-out split (no student row)."""
    return det_study.parse_args(list(data) + ['--eval-on', 'heldout', '--teacher-iters', str(iters), '--work-dir',
                                              osp.join(work_root, f'heldout_t{iters}'), '--rows'])


def teacher_job(sargs, data: dict):
    """det_study's teacher job for ``sargs``, evaluated on the held-out split (``data['heldout']``'s options in
    place of the validation ones), recorded as ``teacher_<iters>``."""
    (job, ) = det_study.jobs(sargs, dict(data, val=data['heldout']), det_study.data_digest(sargs))
    job.method = f'teacher_{sargs.teacher_iters}'
    return job


def table(records: Sequence[dict]) -> List[str]:
    """One markdown row per schedule: the held-out mAP at each validation, the last-quarter change, seconds."""
    lines = ['| schedule | held-out mAP at each validation | last-quarter Δ | s |', '|---|---|---|---|']
    for r in records:
        hist = ', '.join(format_value(h[det_study.METRIC]) for h in r['history'])
        lines.append(f'| {r["method"]} | {hist} | {format_value(det_study.last_quarter_change([r]))} | '
                     f'{r["seconds"]:.0f} |')
    return lines


def main(argv=None) -> List[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('iters', nargs='+', type=int, help='teacher schedules (iterations) to train and evaluate')
    p.add_argument('--data', default=DEFAULT_DATA, help='det_study data options, one string (default: %(default)s)')
    p.add_argument('--work-root', default='work_dirs/det_tune_c6_d1', help='where each schedule trains')
    p.add_argument('--out', default=DEFAULT_OUT, help='folder of results.jsonl and results.md')
    args = p.parse_args(argv)
    records = []
    for iters in args.iters:
        sargs = study_args(iters, shlex.split(args.data), args.work_root)
        job = teacher_job(sargs, det_study.prepare_data(sargs))
        runs, failures = StudyRunner(jobs=sargs.jobs, threads=sargs.threads).run([job])
        if failures:
            raise SystemExit(f'teacher_{iters}: {failures[0]["error"]}')
        records.append(runs[job.id])
    rewrite_results(osp.join(args.out, 'results.jsonl'), records)
    lines = table(records)
    with open(osp.join(args.out, 'results.md'), 'w') as f:
        f.write('\n'.join(lines) + '\n')
    print('\n'.join(lines))
    return records


if __name__ == '__main__':
    main()
