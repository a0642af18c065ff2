# mmkd: the single entry point (see README).
#   make install   create/update .venv (torch, mmcv 2.1.0 built with ops, mmengine, mmdet, mmrazor, mmkd -e)
#   make test      install + test requirements, then the lint check (ruff.toml) and the whole test suite
#                  (2 pytest-xdist workers, each test file on one of them)
#   make demo      install, then the end-to-end demo
#   FORCE_CUDA=1 make install   the same with mmcv's CUDA ops (opt-in; see docs/installation.md)
#   make gpu-check  on a GPU machine: tools/misc/gpu_check.sh run (results in $OUT or gpu_check_results/)
PYTHON := .venv/bin/python

.PHONY: install test demo gpu-check

install:
	bash tools/misc/install.sh

test:
	bash tools/misc/install.sh requirements/tests.txt
	$(PYTHON) -m ruff check .
	$(PYTHON) -m pytest tests -q -n 2 --dist loadfile

demo: install
	$(PYTHON) tools/analysis/run_demo.py

gpu-check:
	bash tools/misc/gpu_check.sh run
