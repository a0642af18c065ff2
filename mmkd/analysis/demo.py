"""mmkd's demo (``make demo``, ``tools/analysis/run_demo.py``): the detection study's seed-0 runs of the teacher,
the student alone, KD, KD++, ReviewKD++, NC + KD and iCD-RoI + KD (:mod:`mmkd.analysis.det_study`, whose
options all work here), then the table and the pictures (``tools/analysis/plot_study.py``)."""
import os.path as osp
import subprocess
import sys

from . import det_study
from .study import REPO

# One seed and the shipped methods, with the study's schedule: the demo's rows are the study's seed-0 runs.
DEMO_ROWS = det_study.DEMO_ROWS
DEFAULTS = dict(rows=DEMO_ROWS, seeds=[0], default_work_dir='work_dirs/demo')
SCRIPT = 'tools/analysis/run_demo.py'


def main(argv=None) -> dict:
    """The demo; exits 1 (after the table and the pictures) if a run failed."""
    result = det_study.main(argv, defaults=DEFAULTS, script=SCRIPT)
    if not result:
        return result
    plot = osp.join(REPO, 'tools', 'analysis', 'plot_study.py')
    if osp.isfile(plot) and (result['rows'] or result['teacher']):
        proc = subprocess.run([sys.executable, plot, result['out']], cwd=REPO, check=False)
        if proc.returncode == 0:
            print(f'Pictures: {result["out"]}/det_*.png', flush=True)
    print('\nNext: tools/dist_train.sh and tools/slurm_train.sh use this checkout\'s .venv by themselves, e.g. '
          '`tools/dist_train.sh configs/faster_rcnn_r101_r50_nd.py 8`; activate it (`source .venv/bin/activate`) '
          'before any `python tools/...` command.', flush=True)
    if result['failures']:
        print(f'{len(result["failures"])} run(s) failed: see the table above and their logs.', file=sys.stderr)
        sys.exit(1)
    return result
