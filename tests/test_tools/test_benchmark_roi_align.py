"""tools/analysis/benchmark_roi_align.py: one row per size, timed side by side, and mmkd's and mmcv's RoIAlign
agreeing on the benchmark's own inputs."""
import os.path as osp
import re
import runpy

import mmkd  # noqa: F401

SCRIPT = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'tools', 'analysis',
                  'benchmark_roi_align.py')


def test_prints_a_timed_row_per_size_with_small_differences(capsys):
    runpy.run_path(SCRIPT, run_name='bench')['main'](['--sizes', 'demo', '--repeats', '2', '--warmup', '1',
                                                      '--threads', '1'])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith('| demo |')]
    assert len(rows) == 1
    cells = [c.strip() for c in rows[0].strip('|').split('|')]
    times = [float(cells[i]) for i in (1, 2, 4, 5)]
    ratios = [float(cells[i].rstrip('x')) for i in (3, 6)]
    assert all(t > 0 for t in times) and all(r > 0 for r in ratios)
    assert all(re.fullmatch(r'[0-9.]+e[-+][0-9]+', c) for c in cells[7:11])
    # both outputs: float32 arithmetic's distance from float64's; mmkd's is mmcv's (its float32 steps)
    assert float(cells[7]) < 1e-4 and float(cells[8]) < 1e-4
    assert float(cells[9]) < 1e-6 and float(cells[10]) < 1e-4
