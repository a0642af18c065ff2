"""Makes the checkout importable (``mmkd``) when pytest runs without an installed mmkd, like the tools do."""
import os.path as osp
import sys

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)
