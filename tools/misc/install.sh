#!/usr/bin/env bash
# Create or update the project's virtual environment (what `make install` / `make test` run).
#
#   tools/misc/install.sh [EXTRA_REQUIREMENTS_FILE ...]
#
# Every step first probes the venv and is skipped when already satisfied, so a second run takes seconds.
# Environment: VENV (default .venv), TORCH_VERSION (default 2.13.0; a torch already in the venv is kept),
# MAX_JOBS (default: nproc), FORCE_CUDA=1 (build mmcv's CUDA ops; needs nvcc), TORCH_CUDA_ARCH_LIST.
set -euo pipefail
cd "$(dirname "$0")/../.."

VENV=${VENV:-.venv}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
MMCV_VERSION=2.1.0
PY="$VENV/bin/python"

log() { echo "[install] $*"; }
pip_install() { log "pip install $*"; "$PY" -m pip install "$@"; }
probe() { "$PY" -c "$1" >/dev/null 2>&1; }
# True when every requirement of a requirements file is installed at a matching version.
reqs_ok() {
    "$PY" - "$1" >/dev/null 2>&1 <<'PYEOF'
import sys
from importlib.metadata import version
from packaging.requirements import Requirement
for line in open(sys.argv[1]):
    line = line.split('#')[0].strip()
    if line:
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate():
            assert req.specifier.contains(version(req.name), prereleases=True), req
PYEOF
}
MMCV_OK="import mmcv, mmcv.ops; assert mmcv.__version__ == '$MMCV_VERSION'"
if [ "${FORCE_CUDA:-0}" = 1 ]; then  # a cached CPU-only wheel fails this and gets rebuilt
    MMCV_OK="$MMCV_OK; from mmcv.ops import get_compiling_cuda_version as v; assert v() != 'not available'"
fi
build_mmcv() {
    log "building mmcv $MMCV_VERSION with ops (FORCE_CUDA=${FORCE_CUDA:-0}); first build takes ~10 min on 2 cores"
    MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} \
        pip_install --no-build-isolation "$@" "mmcv==$MMCV_VERSION"
}

[ -x "$PY" ] || { log "creating $VENV"; python3 -m venv "$VENV"; }
reqs_ok requirements/build.txt || pip_install -r requirements/build.txt
probe "import importlib.util as u; assert u.find_spec('torch')" || pip_install "torch==$TORCH_VERSION"
reqs_ok requirements/runtime.txt || pip_install -r requirements/runtime.txt
if ! probe "$MMCV_OK"; then
    build_mmcv
    # pip's wheel cache is keyed by the sdist, not by torch or FORCE_CUDA: a wheel built against another torch
    # fails to load _ext, a CPU-only one fails the CUDA check; rebuild without the cache.
    probe "$MMCV_OK" || build_mmcv --no-cache-dir --force-reinstall --no-deps
    "$PY" -c "$MMCV_OK" || { log "ERROR: mmcv $MMCV_VERSION with ops does not import (see above)"; exit 1; }
fi
# mmkd itself, editable, from this checkout (with the venv's setuptools < 81: mmengine needs pkg_resources).
ROOT=$PWD
(cd / && "$PY" -c "import importlib.util as u, os, sys; s = u.find_spec('mmkd')
sys.exit(s is None or os.path.realpath(s.origin) != os.path.realpath(sys.argv[1]))" "$ROOT/mmkd/__init__.py") \
    || pip_install -e . --no-build-isolation --no-deps
for extra in "$@"; do
    reqs_ok "$extra" || pip_install -r "$extra"
done
log "environment ready: $VENV"
