"""tools/analysis/benchmark_losses.py: its reference iCD-RoI equals the shipped one; the command prints every loss."""
import importlib.util
import math
import os.path as osp
import subprocess
import sys

import pytest
import torch

from mmkd.models.losses.functional import icd_grouped_loss

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SCRIPT = osp.join(REPO, 'tools/analysis/benchmark_losses.py')
_spec = importlib.util.spec_from_file_location('benchmark_losses', SCRIPT)
benchmark_losses = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(benchmark_losses)


def test_block_mask_reference_equals_icd_grouped_loss():
    torch.manual_seed(0)
    s, t = torch.randn(7, 5, dtype=torch.float64), torch.randn(7, 5, dtype=torch.float64)
    groups = torch.tensor([0, 0, 0, 1, 1, 2, 3])  # groups of 3, 2, 1 and 1 rows: the 1-row groups count for 0
    ref = benchmark_losses.icd_grouped_block_mask(s, t, groups)
    assert ref.item() == pytest.approx(icd_grouped_loss(s, t, groups).item(), rel=1e-12)
    assert ref.item() > 0


def test_cli_prints_every_loss():
    out = subprocess.run([sys.executable, SCRIPT, '--device', 'cpu', '--repeats', '1', '--warmup', '0',
                          '--threads', '1'], check=True, capture_output=True, text=True, cwd=REPO).stdout
    rows = [line for line in out.splitlines() if line.startswith(('det ', 'cls '))]
    assert len(rows) == 10  # 6 detection cases, 4 classification cases
    for line in rows:
        ms, mib = map(float, line.split()[-2:])
        assert math.isfinite(ms) and ms > 0 and math.isfinite(mib) and mib >= 0
    assert any('iCD (scales 1,2,4)' in line for line in rows) and any('ND' in line for line in rows)
