"""The CPU classification study (resnet20 teacher, resnet8 students x seeds, paired statistics): a thin command
line over :mod:`mmkd.analysis.cls_study`; ``--help`` tells the options.

    python tools/analysis/cls_study.py [--seeds 0 1 2] [--methods baseline kd kdpp dkd dkdpp nc nc_kd icd] \
        [--eval-on heldout] [--dry-run] [--report]
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # this checkout's mmkd
from mmkd.analysis.cls_study import cli  # noqa: E402

if __name__ == '__main__':
    cli()
