"""Makes the checkout importable (``mmkd``) when pytest runs without an installed mmkd, like the tools do, and
seeds every test."""
import os.path as osp
import random
import sys

import numpy as np
import pytest
import torch

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)


@pytest.fixture(autouse=True)
def _seed_everything():
    """Every test starts from the same random state, so its outcome never depends on the draw or on which tests
    ran before it. Tests that need several draws seed again themselves."""
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
