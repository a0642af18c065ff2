#!/usr/bin/env bash
# Offline installation of mmkd on an air-gapped GPU cluster.
#
# 1. On a machine with internet access (any OS/arch; pip selects the cluster's wheels by tag):
#      tools/misc/offline_install_gpu.sh download --wheelhouse DIR [--python-version 3.11]
#                                                 [--platform manylinux2014_x86_64 ...]
#    DIR then holds binary wheels of mmengine/mmdet/mmrazor and everything they import, plus the mmcv 2.1.0
#    sdist. torch is NOT downloaded: use the cluster's CUDA torch (>= 2.1), or add its wheels to DIR
#    (e.g. `pip download torch==2.5.1 --index-url https://download.pytorch.org/whl/cu124 -d DIR`).
# 2. Copy DIR and this repository to the cluster; in the target Python environment (with torch and nvcc):
#      tools/misc/offline_install_gpu.sh install --wheelhouse DIR
#    installs every wheel of DIR (--no-index --no-deps), builds mmcv 2.1.0 with its CUDA ops
#    (FORCE_CUDA=1, TORCH_CUDA_ARCH_LIST default 9.0, i.e. H100/H200; the build is timed), installs that wheel
#    and mmkd (editable), then checks that mmcv's ops were compiled with CUDA and that mmkd imports.
#
# Options: --python PY (default: python), --dry-run (print the commands, run nothing).
# Environment: TORCH_CUDA_ARCH_LIST (9.0), MAX_JOBS (nproc).
set -euo pipefail

MMCV_VERSION=2.1.0
# What mmengine 0.10.7, mmdet 3.3.0, mmrazor 1.0.0, mmcv 2.1.0 and mmkd import, transitively (their METADATA
# Requires-Dist), plus the build requirements of mmcv and pytest. tomli/exceptiongroup: Python < 3.11 only.
PACKAGES=(
    mmengine==0.10.7 mmdet==3.3.0 mmrazor==1.0.0
    "setuptools>=77,<81" wheel ninja numpy packaging
    addict pyyaml yapf platformdirs tomli termcolor rich markdown-it-py mdurl pygments opencv-python
    matplotlib contourpy cycler fonttools kiwisolver pillow pyparsing python-dateutil six
    pycocotools scipy shapely terminaltables tqdm ordered-set joblib
    pytest iniconfig pluggy exceptiongroup
)

usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "error: $*" >&2; exit 2; }

case ${1:-} in
    download|install) CMD=$1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
esac
WHEELHOUSE='' PY=python PYVER=3.11 DRY_RUN=0 PLATFORMS=()
while [ $# -gt 0 ]; do
    case $1 in
        --wheelhouse) WHEELHOUSE=${2:?}; shift 2 ;;
        --python) PY=${2:?}; shift 2 ;;
        --python-version) PYVER=${2:?}; shift 2 ;;
        --platform) PLATFORMS+=("--platform" "${2:?}"); shift 2 ;;
        --dry-run) DRY_RUN=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done
[ -n "$WHEELHOUSE" ] || die "--wheelhouse DIR is required"
[ ${#PLATFORMS[@]} -gt 0 ] || PLATFORMS=(--platform manylinux2014_x86_64)

run() { echo "+ $(printf '%q ' "$@")"; [ "$DRY_RUN" = 1 ] || "$@"; }

if [ "$CMD" = download ]; then
    run mkdir -p "$WHEELHOUSE"
    run "$PY" -m pip download --only-binary :all: --no-deps --python-version "$PYVER" "${PLATFORMS[@]}" \
        -d "$WHEELHOUSE" "${PACKAGES[@]}"
    run "$PY" -m pip download --no-binary :all: --no-deps -d "$WHEELHOUSE" "mmcv==$MMCV_VERSION"
    exit 0
fi

# install
cd "$(dirname "$0")/../.."
SDIST="$WHEELHOUSE/mmcv-$MMCV_VERSION.tar.gz"
if [ "$DRY_RUN" = 0 ]; then
    [ -f "$SDIST" ] || die "$SDIST not found: run the download step first"
    "$PY" -c "import torch" || die "torch is not importable with $PY: install the cluster's CUDA torch first"
fi
run "$PY" -m pip install --no-index --no-deps "$WHEELHOUSE"/*.whl
start=$SECONDS
run env FORCE_CUDA=1 MMCV_WITH_OPS=1 TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}" \
    MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
    "$PY" -m pip wheel --no-deps --no-build-isolation "$SDIST" -w "$WHEELHOUSE/built"
[ "$DRY_RUN" = 1 ] || echo "mmcv build took $((SECONDS - start)) s"
run "$PY" -m pip install --no-index --no-deps --force-reinstall "$WHEELHOUSE/built/mmcv-$MMCV_VERSION-"*.whl
run "$PY" -m pip install --no-index --no-deps --no-build-isolation -e .
run "$PY" -m pip check || echo "warning: pip check found missing or conflicting requirements (above)"
run "$PY" -c "from mmcv.ops import get_compiling_cuda_version as v; assert v() != 'not available', \
'mmcv ops were built without CUDA'; import mmkd; print('mmcv ops CUDA', v(), '- mmkd', mmkd.__version__)"
