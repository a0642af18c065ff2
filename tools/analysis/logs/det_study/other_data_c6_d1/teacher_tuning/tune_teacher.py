"""The detection study's teacher on the 6-class data (data seed 1), evaluated on the held-out training images
instead of the validation images, at several schedules: the teacher's schedule chosen on held-out data, as the
protocol asks (det_study's own teacher always evaluates on the validation images it reports).

    python tools/analysis/logs/det_study/other_data_c6_d1/teacher_tuning/tune_teacher.py 1500 3000

Each schedule trains as det_study trains its teacher (2 processes, seed 0; ``--teacher-iters`` scaling the LR step
and validations) into ``work_dirs/det_tune_c6_d1/heldout_t<iters>``; the records go to ``results.jsonl`` next to
this file (method ``teacher_<iters>``), the table to ``results.md``.
"""
import os.path as osp
import sys

from mmkd.analysis import det_study
from mmkd.analysis.study import StudyRunner, format_value, rewrite_results

HERE = osp.dirname(osp.abspath(__file__))
DATA = ['--data-seed', '1', '--num-classes', '6', '--eval-on', 'heldout', '--rows']


def main(iters_list):
    records = []
    for iters in iters_list:
        args = det_study.parse_args(DATA + ['--teacher-iters', str(iters), '--work-dir',
                                            f'work_dirs/det_tune_c6_d1/heldout_t{iters}'])
        data = det_study.prepare_data(args)
        (job, ) = det_study.jobs(args, dict(data, val=data['heldout']), det_study.data_digest(args))
        job.method = f'teacher_{iters}'
        runs, failures = StudyRunner(jobs=args.jobs, threads=args.threads).run([job])
        if failures:
            raise SystemExit(f'teacher_{iters}: {failures[0]["error"]}')
        records.append(runs[job.id])
    rewrite_results(osp.join(HERE, 'results.jsonl'), records)
    lines = ['| schedule | held-out mAP at each validation | last-quarter Δ | s |', '|---|---|---|---|']
    for r in records:
        hist = ', '.join(format_value(h[det_study.METRIC]) for h in r['history'])
        lines.append(f'| {r["method"]} | {hist} | {format_value(det_study.last_quarter_change([r]))} | '
                     f'{r["seconds"]:.0f} |')
    with open(osp.join(HERE, 'results.md'), 'w') as f:
        f.write('\n'.join(lines) + '\n')
    print('\n'.join(lines))


if __name__ == '__main__':
    main([int(a) for a in sys.argv[1:]])
