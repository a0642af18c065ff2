"""Paired Δ pooled over several runs of the detection study: each (study, seed) is one pair.

    python tools/analysis/pool_studies.py                       # the two studies docs/studies/detection.md pools
    python tools/analysis/pool_studies.py A/results.jsonl B/results.jsonl [REV:path/results.jsonl ...]

A study is a ``results.jsonl`` written by ``det_study.py`` (or its folder), or ``REV:path`` for one that only the
git history keeps (read with ``git show REV:path``). For every pair of rows in ``PAIRS``, the differences
``row - reference`` at the same (study, seed) go through mmkd's ``paired_delta``: mean ± standard error over all
pairs, and the mean in standard errors. The default studies are the detection study with ``mmkd.ops.RoIAlign``
(``tools/analysis/logs/det_study/``) and the same study with mmcv's CPU RoIAlign (archived; ``DEFAULT_STUDIES``
names the commit that holds it).
"""
import argparse
import json
import os.path as osp
import subprocess
import sys
from typing import Dict, Iterable, List, Mapping, Sequence, Tuple

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)  # this checkout's mmkd
from mmkd.analysis.study import paired_delta  # noqa: E402

#: the study with mmkd.ops.RoIAlign, and the archived one with mmcv's (removed from the tree after 622514e)
DEFAULT_STUDIES = ['tools/analysis/logs/det_study/results.jsonl',
                   '622514e:tools/analysis/logs/det_study/archive_2026-12-06_mmcv_roialign/results.jsonl']
#: (row, reference) pairs, in the order docs/studies/detection.md lists them
PAIRS = [('kd', 'baseline'), ('nd_nokd', 'baseline'), ('nd', 'baseline'), ('reviewkd', 'baseline'),
         ('reviewkdpp', 'baseline'), ('nc', 'baseline'), ('icd', 'baseline'), ('nc_w0.1', 'baseline'),
         ('nd', 'kd'), ('reviewkdpp', 'reviewkd'), ('nc', 'kd'), ('icd', 'kd'), ('nc_w0.1', 'kd')]


def read_study(spec: str, repo: str = REPO) -> List[dict]:
    """The records of one study: a results.jsonl path or folder, or ``REV:path`` read from the git history."""
    rev, sep, path = spec.partition(':')
    if sep and not osp.exists(spec):
        text = subprocess.run(['git', '-C', repo, 'show', f'{rev}:{path}'], check=True, capture_output=True,
                              text=True).stdout
    else:
        path = osp.join(spec, 'results.jsonl') if osp.isdir(spec) else spec
        with open(path) as f:
            text = f.read()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def pool(studies: Mapping[str, Iterable[dict]]) -> Dict[str, Dict[Tuple[str, int], float]]:
    """row -> {(study, seed): metric} over every study's records (a record without a method is not a run)."""
    values: Dict[str, Dict[Tuple[str, int], float]] = {}
    for study, records in studies.items():
        for record in records:
            if record.get('method') is not None:
                values.setdefault(record['method'], {})[study, record['seed']] = record['metric']
    return values


def pooled_deltas(values: Mapping[str, Mapping[Tuple[str, int], float]],
                  pairs: Sequence[Tuple[str, str]] = PAIRS) -> List[dict]:
    """``paired_delta`` of each (row, reference) over the pairs both have; pairs with a missing row are skipped."""
    out = []
    for row, ref in pairs:
        if row in values and ref in values:
            out.append(dict(row=row, ref=ref, **paired_delta(values[row], values[ref])))
    return out


def format_line(d: dict) -> str:
    se = f' ± {d["se"]:.3f} ({d["mean"] / d["se"]:+.1f} SE)' if d['se'] else ''
    return f'{d["row"]} vs {d["ref"]}: n={d["n"]} {d["mean"]:+.3f}{se}'


def main(argv=None) -> List[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('studies', nargs='*', default=DEFAULT_STUDIES,
                   help='results.jsonl files or folders, or REV:path (default: the two studies the docs pool)')
    args = p.parse_args(argv)
    deltas = pooled_deltas(pool({spec: read_study(spec) for spec in args.studies}))
    for d in deltas:
        print(format_line(d))
    return deltas


if __name__ == '__main__':
    main()
