"""tools/analysis/roi_align_bitwise.py: saved outputs and gradients, compared bitwise, on tiny cases."""
import importlib.util
import os.path as osp
import subprocess
import sys

import torch

from mmkd.ops import RoIAlign

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SCRIPT = osp.join(REPO, 'tools/analysis/roi_align_bitwise.py')
_spec = importlib.util.spec_from_file_location('roi_align_bitwise', SCRIPT)
bitwise = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bitwise)

TINY = [(8, 8, 4, 6, 0.25), (4, 6, 2, 3, 0.125)]


def test_compute_is_deterministic_and_shaped():
    a = bitwise.compute(RoIAlign, TINY, batch=2)
    b = bitwise.compute(RoIAlign, TINY, batch=2)
    assert [t.shape for t in a] == [(6, 4, 7, 7), (2, 4, 8, 8), (3, 2, 7, 7), (2, 2, 4, 6)]
    assert all(torch.isfinite(t).all() for t in a)
    assert bitwise.compare(a, b) == [True] * 4


def test_compare_sees_one_ulp_and_a_missing_tensor():
    a = bitwise.compute(RoIAlign, TINY[:1], batch=2)
    b = [t.clone() for t in a]
    b[1].view(-1)[0] = torch.nextafter(b[1].view(-1)[0], torch.tensor(float('inf')))
    assert bitwise.compare(a, b) == [True, False]
    assert bitwise.compare(a, a[:1]) == [True, False]


def test_cli_save_and_compare(tmp_path):
    a, b = str(tmp_path / 'a.pt'), str(tmp_path / 'b.pt')
    subprocess.run([sys.executable, SCRIPT, 'save', REPO, a], check=True)
    torch.save(torch.load(a)[:-1] + [torch.load(a)[-1] + 1], b)  # the last gradient changed
    same = subprocess.run([sys.executable, SCRIPT, 'compare', a, a], capture_output=True, text=True)
    assert same.returncode == 0 and same.stdout.strip() == str([True] * 6)
    differ = subprocess.run([sys.executable, SCRIPT, 'compare', a, b], capture_output=True, text=True)
    assert differ.returncode == 1 and differ.stdout.strip() == str([True] * 5 + [False])
