"""mmkd's demo (``make demo``): the detection study of ``det_study.py`` at one seed and its shipped methods.

Generates the synthetic COCO-format shapes (no download), trains the Faster R-CNN R50-FPN teacher of
``configs/demo/``, then the R18-FPN student alone, with plain KD, and with ND (KD++), NC and iCD (each + KD), two
runs side by side, each evaluated with COCO bbox mAP; prints one table and draws the pictures. Finished runs are
reused (``--force`` retrains). Every option of ``det_study.py`` works here (``--help``); the study itself, with
3 seeds and each method also without KD, is ``python tools/analysis/det_study.py``.

    python tools/analysis/run_demo.py
"""
import os.path as osp
import subprocess
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
import det_study  # noqa: E402

# One seed and the shipped methods, with the study's schedule: the demo's rows are the study's seed-0 runs.
DEFAULTS = dict(rows=['baseline', 'kd', 'nd', 'nc', 'icd'], seeds=[0], work_dir='work_dirs/demo')


def main(argv=None) -> dict:
    result = det_study.main(argv, defaults=DEFAULTS, script='tools/analysis/run_demo.py')
    if not result:
        return result
    plot = osp.join(det_study.REPO, 'tools', 'analysis', 'plot_study.py')
    if osp.isfile(plot):
        subprocess.run([sys.executable, plot, result['out']], cwd=det_study.REPO, check=False)
    print('\nNext: tools/dist_train.sh and tools/slurm_train.sh use this checkout\'s .venv by themselves, e.g. '
          '`tools/dist_train.sh configs/faster_rcnn_r101_r50_nd.py 8`; activate it (`source .venv/bin/activate`) '
          'before any `python tools/...` command.', flush=True)
    return result


if __name__ == '__main__':
    main()
