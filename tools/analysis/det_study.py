"""The detection study (teacher, student rows x seeds, paired statistics): a thin command line over
:mod:`mmkd.analysis.det_study`; ``--help`` tells the protocol and the options.

    python tools/analysis/det_study.py                                   # the study
    python tools/analysis/det_study.py --family gfl                      # the dense (GFL) study
    python tools/analysis/det_study.py --rows nd --seeds 0 --eval-on heldout \\
        --variant nd_w2 nd model.distiller.distill_losses.loss_nd.loss_weight=2.0   # tune a weight (own folder)
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # this checkout's mmkd
from mmkd.analysis.det_study import cli  # noqa: E402

if __name__ == '__main__':
    cli()
