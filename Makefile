# mmkd: the single entry point (see README).
#   make install   create/update .venv (torch, mmcv 2.1.0 built with ops, mmengine, mmdet, mmrazor, mmkd -e)
#   make test      install + test requirements, then the whole test suite
#   make demo      install, then the end-to-end demo
PYTHON := .venv/bin/python

.PHONY: install test demo

install:
	bash tools/misc/install.sh

test:
	bash tools/misc/install.sh requirements/tests.txt
	$(PYTHON) -m pytest tests -q

demo: install
	$(PYTHON) tools/analysis/run_demo.py
