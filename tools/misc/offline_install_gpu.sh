#!/usr/bin/env bash
# Offline installation of mmkd on an air-gapped GPU cluster.
#
# 1. On a machine with internet access (any OS/arch; pip selects the cluster's wheels by tag):
#      tools/misc/offline_install_gpu.sh download --wheelhouse DIR [--python-version 3.11]
#                                                 [--platform manylinux_2_28_x86_64 ...] [--exclude NAME ...]
#    DIR then holds binary wheels of mmengine/mmdet/mmrazor and everything they import, plus the mmcv 2.1.0
#    sdist; --exclude leaves out packages the cluster's environment already has (e.g. opencv-python, scipy).
#    torch is NOT downloaded: use the cluster's CUDA torch (>= 2.1), or add its wheels to DIR
#    (e.g. `pip download torch==2.5.1 --index-url https://download.pytorch.org/whl/cu124 -d DIR`).
# 2. Copy DIR and this repository to the cluster; in the target virtual environment (with a CUDA torch):
#      tools/misc/offline_install_gpu.sh install --wheelhouse DIR [--python PY]
#    installs every wheel of DIR but mmcv's (--no-index --no-deps), then runs tools/misc/install.sh offline (pip
#    sees only DIR) with FORCE_CUDA=1 and MMCV_WHEEL_DIR=DIR: a prebuilt mmcv wheel in DIR recorded (DIR/mmcv-build.txt)
#    for this torch, CUDA and TORCH_CUDA_ARCH_LIST is installed as it is; otherwise mmcv 2.1.0's CUDA ops are built
#    from the sdist (TORCH_CUDA_ARCH_LIST default 9.0, i.e. H100/H200; the system nvcc of torch's CUDA major; the
#    build is timed). Then mmkd (editable), and a check that mmcv's ops were compiled with CUDA and mmkd imports.
#
# Options: --python PY (default: python; must run in a virtual environment), --dry-run (print the commands, run
# nothing). Environment: TORCH_CUDA_ARCH_LIST (9.0), MAX_JOBS (nproc), CUDA_TOOLKIT (see install.sh).
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
# manylinux tags pip accepts for --platform are matched exactly: name the common ones
DEFAULT_PLATFORMS=(manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64)

usage() { sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "error: $*" >&2; exit 2; }

case ${1:-} in
    download|install) CMD=$1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
esac
WHEELHOUSE='' PY=python PYVER=3.11 DRY_RUN=0 PLATFORMS=() EXCLUDE=()
while [ $# -gt 0 ]; do
    case $1 in
        --wheelhouse) WHEELHOUSE=${2:?}; shift 2 ;;
        --python) PY=${2:?}; shift 2 ;;
        --python-version) PYVER=${2:?}; shift 2 ;;
        --platform) PLATFORMS+=("--platform" "${2:?}"); shift 2 ;;
        --exclude) EXCLUDE+=("${2:?}"); shift 2 ;;
        --dry-run) DRY_RUN=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done
[ -n "$WHEELHOUSE" ] || die "--wheelhouse DIR is required"
if [ ${#PLATFORMS[@]} -eq 0 ]; then
    for platform in "${DEFAULT_PLATFORMS[@]}"; do PLATFORMS+=(--platform "$platform"); done
fi

run() { echo "+ $(printf '%q ' "$@")"; [ "$DRY_RUN" = 1 ] || "$@"; }

if [ "$CMD" = download ]; then
    wanted=()
    for package in "${PACKAGES[@]}"; do
        name=${package%%[<>=!~ ]*}
        skip=0
        for excluded in "${EXCLUDE[@]+"${EXCLUDE[@]}"}"; do [ "$name" = "$excluded" ] && skip=1; done
        [ "$skip" = 1 ] || wanted+=("$package")
    done
    run mkdir -p "$WHEELHOUSE"
    run "$PY" -m pip download --only-binary :all: --no-deps --python-version "$PYVER" --implementation cp \
        "${PLATFORMS[@]}" -d "$WHEELHOUSE" "${wanted[@]}"
    # pip prepares the sdist's metadata by running mmcv's setup.py, which imports pkg_resources (setuptools < 81)
    [ "$DRY_RUN" = 1 ] || echo 'setuptools<81' >"$WHEELHOUSE/build-constraints.txt"
    run env PIP_CONSTRAINT="$WHEELHOUSE/build-constraints.txt" "$PY" -m pip download --no-binary :all: --no-deps \
        -d "$WHEELHOUSE" "mmcv==$MMCV_VERSION"
    exit 0
fi

# install
cd "$(dirname "$0")/../.."
WHEELHOUSE=$(cd "$WHEELHOUSE" 2>/dev/null && pwd || echo "$WHEELHOUSE")
SDIST="$WHEELHOUSE/mmcv-$MMCV_VERSION.tar.gz"
VENV="<prefix of $PY>"
if [ "$DRY_RUN" = 0 ]; then
    [ -f "$SDIST" ] || die "$SDIST not found: run the download step first"
    "$PY" -c "import torch; assert torch.version.cuda" \
        || die "$PY has no CUDA build of torch: install the cluster's CUDA torch first"
    VENV=$("$PY" -c "import sys; print(sys.prefix)")
    [ -x "$VENV/bin/python" ] || die "$PY is not in a virtual environment ($VENV/bin/python missing): create one, \
e.g. python3 -m venv --system-site-packages ENV, and pass --python ENV/bin/python"
fi
wheels=()
for wheel in "$WHEELHOUSE"/*.whl; do  # mmcv's own wheel, if any, is install.sh's to take or leave
    case $(basename "$wheel") in mmcv-*) ;; *) wheels+=("$wheel") ;; esac
done
[ "${#wheels[@]}" -eq 0 ] || run "$PY" -m pip install --no-index --no-deps "${wheels[@]}"
run env VENV="$VENV" PIP_NO_INDEX=1 PIP_FIND_LINKS="$WHEELHOUSE" FORCE_CUDA=1 MMCV_WHEEL_DIR="$WHEELHOUSE" \
    TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}" MAX_JOBS="${MAX_JOBS:-$(nproc)}" bash tools/misc/install.sh
run "$PY" -m pip check || echo "warning: pip check found missing or conflicting requirements (above)"
run "$PY" -c "from mmcv.ops import get_compiling_cuda_version as v; assert v() != 'not available', \
'mmcv ops were built without CUDA'; import mmcv._ext, mmkd; print('mmcv ops CUDA', v(), '- mmkd', mmkd.__version__)"
