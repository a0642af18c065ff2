"""The paired Δ of README.md's "Both studies together": the runs of this study and of the archived mmcv-RoIAlign
one, each (study, seed) a pair, with mmkd's own paired statistics.

    python tools/analysis/logs/det_study/pool_studies.py
"""
import json
import os.path as osp
import sys
from collections import defaultdict

HERE = osp.dirname(osp.abspath(__file__))
sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.dirname(HERE)))))  # this checkout's mmkd
from mmkd.analysis.study import paired_delta  # noqa: E402

STUDIES = {'mmkd': HERE, 'mmcv': osp.join(HERE, 'archive_2026-12-06_mmcv_roialign')}
PAIRS = [('kd', 'baseline'), ('nd_nokd', 'baseline'), ('nd', 'baseline'), ('reviewkd', 'baseline'),
         ('reviewkdpp', 'baseline'), ('nc', 'baseline'), ('icd', 'baseline'), ('nc_w0.1', 'baseline'),
         ('nd', 'kd'), ('reviewkdpp', 'reviewkd'), ('nc', 'kd'), ('icd', 'kd'), ('nc_w0.1', 'kd')]

values = defaultdict(dict)  # row -> {(study, seed): mAP}
for study, folder in STUDIES.items():
    with open(osp.join(folder, 'results.jsonl')) as f:
        for record in map(json.loads, f):
            values[record['method']][study, record['seed']] = record['metric']
for row, ref in PAIRS:
    d = paired_delta(values[row], values[ref])
    print(f'{row} vs {ref}: n={d["n"]} {d["mean"]:+.3f} ± {d["se"]:.3f} ({d["mean"] / d["se"]:+.1f} SE)')
