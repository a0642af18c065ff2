"""The detection study's teacher evaluated on the held-out training images, at several schedules.

The teacher's schedule chosen on held-out data, as the studies' protocol asks (det_study's own teacher always
evaluates on the validation images it reports). Used for the 6-class data (data seed 1):

    python tools/analysis/tune_teacher.py 1500 3000
    python tools/analysis/tune_teacher.py --family gfl 1500 3000      # the dense study's GFL teacher


Each schedule trains as det_study trains its teacher (2 processes, seed 0; ``--teacher-iters`` scaling the LR step
and validations) into ``work_dirs/det_tune_<data>/heldout_t<iters>``; the records go to ``OUT/results.jsonl``
(method ``teacher_<iters>``; earlier records of other schedules are kept), the table to ``OUT/results.md``. ``--data``
takes det_study's data and run options (default: the 6-class data of seed 1; with ``--family gfl`` the default
data); ``--out`` defaults to that study's ``teacher_tuning/`` log folder (``--family gfl``:
``tools/analysis/logs/dense_study/teacher_tuning``). A schedule whose run finished (same command, same data) is
not trained again, so an interrupted tuning resumes.
"""
import argparse
import json
import os
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
# --family -> (data options, work root, out) when not given
FAMILY_DEFAULTS = {
    'faster_rcnn': (DEFAULT_DATA, 'work_dirs/det_tune_c6_d1', DEFAULT_OUT),
    'gfl': ('', 'work_dirs/dense_tune', osp.join(REPO, 'tools/analysis/logs/dense_study/teacher_tuning')),
}


def study_args(iters: int, data: Sequence[str], work_root: str, family: str = 'faster_rcnn', tag: str = ''):
    """det_study's arguments for a teacher of ``iters`` iterations evaluated on the held-out split (no student row),
    trained in ``<work_root>/heldout_t<iters>[_<tag>]``."""
    name = f'heldout_t{iters}' + (f'_{tag}' if tag else '')
    return det_study.parse_args(list(data) + ['--family', family, '--eval-on', 'heldout', '--teacher-iters',
                                              str(iters), '--work-dir', osp.join(work_root, name), '--rows'])


def teacher_job(sargs, data: dict, tag: str = ''):
    """det_study's teacher job for ``sargs``, evaluated on the held-out split (``data['heldout']``'s options in
    place of the validation ones), recorded as ``teacher_<iters>[_<tag>]``."""
    (job, ) = det_study.jobs(sargs, dict(data, val=data['heldout']), det_study.data_digest(sargs))
    job.method = f'teacher_{sargs.teacher_iters}' + (f'_{tag}' if tag else '')
    return job


def table(records: Sequence[dict]) -> List[str]:
    """One markdown row per schedule: the held-out mAP at each validation, the last-quarter change, seconds."""
    lines = ['| schedule | held-out mAP at each validation | last-quarter Δ | s |', '|---|---|---|---|']
    for r in records:
        hist = ', '.join(format_value(h[det_study.METRIC]) for h in r['history'])
        lines.append(f'| {r["method"]} | {hist} | {format_value(det_study.last_quarter_change([r]))} | '
                     f'{r["seconds"]:.0f} |')
    return lines


def write_table(results: str, out: str) -> List[str]:
    """:func:`table` of every teacher run in ``results`` (all the calls' schedules and settings, in their order),
    written to ``out``; nothing written if ``results`` has none."""
    if not osp.isfile(results):
        return []
    with open(results) as f:
        runs = [json.loads(line) for line in f if line.strip()]
    runs = [r for r in runs if str(r.get('method', '')).startswith('teacher_') and r.get('history')]
    if not runs:
        return []
    lines = table(runs)
    with open(out, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    return lines


def main(argv=None) -> List[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('iters', nargs='*', type=int, help='teacher schedules (iterations) to train and evaluate (none: '
                   'only rewrite results.md from results.jsonl)')
    p.add_argument('--family', choices=list(FAMILY_DEFAULTS), default='faster_rcnn', help='det_study\'s family')
    p.add_argument('--data', help=f'det_study data / run options, one string (default: {DEFAULT_DATA!r}, with '
                   '--family gfl: none)')
    p.add_argument('--work-root', help='where each schedule trains (default: work_dirs/det_tune_c6_d1, with '
                   '--family gfl: work_dirs/dense_tune)')
    p.add_argument('--out', help='folder of results.jsonl and results.md')
    p.add_argument('--tag', default='', help='names runs of other settings (e.g. lr4e-3 with --data '
                   '"--teacher-cfg-options optim_wrapper.optimizer.lr=4e-3"): their own work dirs and records')
    args = p.parse_args(argv)
    data, work_root, out = FAMILY_DEFAULTS[args.family]
    args.data = data if args.data is None else args.data
    args.work_root = args.work_root or work_root
    args.out = args.out or out
    os.makedirs(args.out, exist_ok=True)
    results = osp.join(args.out, 'results.jsonl')
    records = []
    lines = write_table(results, osp.join(args.out, 'results.md'))
    for iters in args.iters:
        sargs = study_args(iters, shlex.split(args.data), args.work_root, args.family, args.tag)
        job = teacher_job(sargs, det_study.prepare_data(sargs), args.tag)
        runs, failures = StudyRunner(jobs=sargs.jobs, threads=sargs.threads).run([job])
        if failures:
            raise SystemExit(f'teacher_{iters}: {failures[0]["error"]}')
        records.append(runs[job.id])
        # written after each schedule, so that the log holds what has finished
        rewrite_results(results, records)
        lines = write_table(results, osp.join(args.out, 'results.md'))
    print('\n'.join(lines))
    return records


if __name__ == '__main__':
    main()
