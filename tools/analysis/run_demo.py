"""mmkd's demo (``make demo``): the detection study's seed-0 runs of the teacher, the student alone, KD, KD++ and
ReviewKD++, then a dense pair (GFL R18-FPN alone and with CrossKD from a short GFL teacher), both tables and the
pictures; a thin command line over :mod:`mmkd.analysis.demo` (every option of ``det_study.py`` works here, and
``--dense-rows``; ``--help``).

    python tools/analysis/run_demo.py
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # this checkout's mmkd
from mmkd.analysis.demo import main  # noqa: E402

if __name__ == '__main__':
    main()
