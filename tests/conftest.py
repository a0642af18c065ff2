"""Makes the checkout importable (``mmkd``) when pytest runs without an installed mmkd, like the tools do, seeds
every test and gives it the default registry scope it started with."""
import copy
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


@pytest.fixture(autouse=True, scope='module')
def _restore_default_scope_per_module():
    """The same for a module's own fixtures: a module-scoped fixture that builds a Runner or calls
    ``init_default_scope`` runs before :func:`_restore_default_scope` takes its copy, so without this its scope
    would stay set for every later module (which then resolve, e.g., mmkd's names in the mmdet registry)."""
    from mmengine.registry import DefaultScope
    saved = copy.copy(DefaultScope._instance_dict)
    yield
    DefaultScope._instance_dict = saved


@pytest.fixture(autouse=True)
def _restore_default_scope():
    """mmengine's default registry scope is process-wide: a test that sets it (``init_default_scope``, a Runner)
    must not change how the tests after it resolve registry names (e.g. ``'Accuracy'`` under ``mmdet``)."""
    from mmengine.registry import DefaultScope
    saved = copy.copy(DefaultScope._instance_dict)  # what DefaultScope.overwrite_default_scope restores too
    yield
    DefaultScope._instance_dict = saved
