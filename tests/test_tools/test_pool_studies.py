"""tools/analysis/pool_studies.py: paired Δ over (study, seed) pairs, computed by hand on tiny studies."""
import importlib.util
import json
import os.path as osp
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
_spec = importlib.util.spec_from_file_location('pool_studies', osp.join(REPO, 'tools/analysis/pool_studies.py'))
pool_studies = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pool_studies)

# study -> method -> {seed: mAP}; kd - baseline per (study, seed): 0.10, 0.20 (a), 0.30, 0.40 (b)
STUDIES = {'a': {'baseline': {0: 0.20, 1: 0.30}, 'kd': {0: 0.30, 1: 0.50}},
           'b': {'baseline': {0: 0.10, 1: 0.20}, 'kd': {0: 0.40, 1: 0.60}}}


def write(folder, runs: dict) -> str:
    path = osp.join(folder, 'results.jsonl')
    with open(path, 'w') as f:
        for method, seeds in runs.items():
            for seed, metric in seeds.items():
                f.write(json.dumps(dict(method=method, seed=seed, metric=metric)) + '\n')
        f.write(json.dumps(dict(note='not a run')) + '\n')  # kept by rewrite_results, skipped here
    return path


def test_pooled_delta_by_hand(tmp_path):
    specs = []
    for name, runs in STUDIES.items():
        (tmp_path / name).mkdir()
        specs.append(write(str(tmp_path / name), runs))
    values = pool_studies.pool({s: pool_studies.read_study(s) for s in specs})
    assert len(values['kd']) == 4  # two studies x two seeds, the same seed in two studies kept apart
    (d, ) = pool_studies.pooled_deltas(values, [('kd', 'baseline'), ('nd', 'baseline')])  # nd: absent, skipped
    # diffs 0.1, 0.2, 0.3, 0.4: mean 0.25, sample sd sqrt(0.05 / 3) = 0.1291, se = sd / 2 = 0.06455
    assert d['n'] == 4 and d['mean'] == pytest.approx(0.25)
    assert d['se'] == pytest.approx((0.05 / 3) ** 0.5 / 2)
    assert pool_studies.format_line(d) == 'kd vs baseline: n=4 +0.250 ± 0.065 (+3.9 SE)'


def test_folder_and_git_revision(tmp_path):
    """A study given as its folder, or as REV:path from the git history (the archived studies)."""
    repo = tmp_path / 'repo'
    (repo / 'logs').mkdir(parents=True)
    write(str(repo / 'logs'), STUDIES['a'])
    git = ['git', '-C', str(repo), '-c', 'user.name=t', '-c', 'user.email=t@t']
    subprocess.run(git + ['init', '-q'], check=True)
    subprocess.run(git + ['add', '.'], check=True)
    subprocess.run(git + ['commit', '-q', '-m', 'a'], check=True)
    subprocess.run(git + ['rm', '-q', '-r', 'logs'], check=True)
    subprocess.run(git + ['commit', '-q', '-m', 'archive out of the tree'], check=True)
    from_git = pool_studies.read_study('HEAD~1:logs/results.jsonl', repo=str(repo))
    (tmp_path / 'a').mkdir()
    write(str(tmp_path / 'a'), STUDIES['a'])
    assert from_git == pool_studies.read_study(str(tmp_path / 'a'))
    assert sum('method' in r for r in from_git) == 4


def test_cli(tmp_path):
    specs = []
    for name, runs in STUDIES.items():
        (tmp_path / name).mkdir()
        specs.append(write(str(tmp_path / name), runs))
    out = subprocess.run([sys.executable, osp.join(REPO, 'tools/analysis/pool_studies.py'), *specs],
                         check=True, capture_output=True, text=True).stdout
    assert out.splitlines() == ['kd vs baseline: n=4 +0.250 ± 0.065 (+3.9 SE)']


def test_default_studies_name_the_committed_log():
    """The default reads the committed detection study; the archived one by a revision the history holds."""
    assert osp.isfile(osp.join(REPO, pool_studies.DEFAULT_STUDIES[0]))
    rev, _, path = pool_studies.DEFAULT_STUDIES[1].partition(':')
    assert len(rev) >= 7 and path.endswith('results.jsonl')
