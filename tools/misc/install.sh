#!/usr/bin/env bash
# Create or update the project's virtual environment (what `make install` / `make test` run).
#
#   tools/misc/install.sh [EXTRA_REQUIREMENTS_FILE ...]
#
# Every step first probes the venv and is skipped when already satisfied, so a second run takes seconds.
# Environment:
#   VENV (default .venv), TORCH_VERSION (default 2.13.0; a torch already in the venv is kept), MAX_JOBS (nproc),
#   DRY_RUN=1   run the probes, print the commands that would change the venv ("+ ..."), change nothing.
# CUDA build of mmcv's ops (opt-in; `make test`, `make demo` and CI use the CPU build):
#   FORCE_CUDA=1            build mmcv's CUDA ops. A torch without CUDA in the venv is replaced by the CUDA build
#                           of TORCH_VERSION, installed with `pip install $CUDA_TORCH_PIP_ARGS` (default
#                           --isolated: pip configuration that prefers a local CPU build is ignored).
#   TORCH_CUDA_ARCH_LIST    GPU architectures to compile for (default "8.0;9.0": A100, H100/H200).
#   CUDA_TOOLKIT=auto       the compiler: auto uses a system toolkit ($CUDA_HOME, the nvcc on PATH, /usr/local/cuda)
#                           when its major version is torch's, else CUDA's compiler and headers from PyPI, installed
#                           into the venv at the version torch was built with; =system or =pypi forces one.
#   The mmcv build is recorded in $VENV/mmcv-build.txt (torch, CUDA, architectures); an mmcv without CUDA ops, or
#   built for another torch or architecture list, is rebuilt without pip's wheel cache.
#   MMCV_WHEEL_DIR=DIR      a folder of prebuilt mmcv CUDA wheels: when DIR/mmcv-build.txt names this venv's build
#                           (the same mmcv, torch, CUDA and architectures), DIR's mmcv wheel is installed instead of
#                           building; else the build writes its wheel and mmcv-build.txt there (a GPU machine then
#                           needs no compile: tools/misc/gpu_check.sh prepare --mmcv-wheel).
#   Before the build it stops, with what to do, when the toolkit's nvcc is not of torch's CUDA (PyPI: the exact
#   major.minor; system: the major) or its cuda_runtime.h / crt headers are missing, and when nvidia-smi reports
#   a driver too old for torch's CUDA (CUDA 13 needs driver >= 580, 12 >= 525; a cu130 torch on an older driver
#   sees no GPU). NVIDIA_SMI (default nvidia-smi) is the tool asked; CUDA_DRIVER_CHECK=0 skips the driver check
#   (building for another machine).
# Needs bash >= 4.0. No array is expanded while it may be empty: under `set -u` bash < 4.4 calls that unbound.
set -euo pipefail
cd "$(dirname "$0")/../.."

VENV=${VENV:-.venv}
case $VENV in /*) ;; *) VENV=$PWD/$VENV ;; esac  # absolute: some probes run from another directory
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
MMCV_VERSION=2.1.0
PY="$VENV/bin/python"
DRY_RUN=${DRY_RUN:-0}
FORCE_CUDA=${FORCE_CUDA:-0}

log() { echo "[install] $*"; }
die() { echo "[install] ERROR: $*" >&2; exit 1; }
# Commands that change the environment go through run: printed, and skipped under DRY_RUN=1.
run() { echo "+ $(printf '%q ' "$@")"; [ "$DRY_RUN" = 1 ] || "$@"; }
pip_install() { run "$PY" -m pip install "$@"; }
probe() { "$PY" -c "$1" >/dev/null 2>&1; }
# True when every requirement of a requirements file is installed at a matching version. opencv-python is also
# satisfied by another distribution of cv2 (installing it next to one of them would overwrite their files).
reqs_ok() {
    "$PY" - "$1" >/dev/null 2>&1 <<'PYEOF'
import sys
from importlib.metadata import PackageNotFoundError, version
from packaging.requirements import Requirement
CV2 = ('opencv-python', 'opencv-python-headless', 'opencv-contrib-python', 'opencv-contrib-python-headless')
for line in open(sys.argv[1]):
    line = line.split('#')[0].strip()
    if line:
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate():
            for name in CV2 if req.name == CV2[0] else (req.name, ):
                try:
                    if req.specifier.contains(version(name), prereleases=True):
                        break
                except PackageNotFoundError:
                    pass
            else:
                sys.exit(f'{req} is not installed')
PYEOF
}

# The CUDA toolkit that builds mmcv: prints CUDA_HOME. A system toolkit is a folder with bin/nvcc and
# include/cuda_runtime.h; its release must have torch's CUDA major version.
system_cuda_home() {
    local nvcc dir
    nvcc=$(command -v nvcc || true)
    for dir in "${CUDA_HOME:-}" "${CUDA_PATH:-}" "${nvcc:+$(dirname "$(dirname "$nvcc")")}" /usr/local/cuda; do
        if [ -n "$dir" ] && [ -x "$dir/bin/nvcc" ] && [ -f "$dir/include/cuda_runtime.h" ]; then
            echo "$dir"; return 0
        fi
    done
    if [ -n "$nvcc" ]; then  # e.g. /usr/local/bin/nvcc, a wrapper: ask nvcc where its toolkit is
        dir=$("$nvcc" -dryrun --version 2>&1 | sed -n 's/^#\$ TOP=//p' | head -n1)
        [ -n "$dir" ] && [ -f "$dir/include/cuda_runtime.h" ] && { (cd "$dir" && pwd -P); return 0; }
    fi
    return 1
}
# The first folder nvidia/<SUBDIR> of the nvidia-* wheels (on any sys.path entry, e.g. of a base environment the
# venv extends) that holds FILE: `nvidia_dir cu13 include/cublas_v2.h`.
nvidia_dir() {
    "$PY" - "$1" "$2" 2>/dev/null <<'PYEOF'
import importlib.util, os, sys
spec = importlib.util.find_spec('nvidia')
for root in (spec.submodule_search_locations or []) if spec else []:
    if os.path.exists(os.path.join(root, sys.argv[1], sys.argv[2])):
        print(os.path.join(root, sys.argv[1]))
        break
PYEOF
}
nvcc_release() { "$1/bin/nvcc" --version | sed -n 's/.*release \([0-9][0-9.]*\),.*/\1/p'; }

# Stops before the (long) mmcv build unless the toolkit in $1 can build for torch's CUDA $2: its nvcc runs and is of
# release $2 (with $3 = exact, the major.minor, as the PyPI wheels are pinned to torch's; else the same major), and
# the CUDA runtime and crt headers are there. $4 is what to do otherwise.
check_toolkit() {
    local home=$1 want=$2 exact=$3 fix=$4 release header missing=''
    release=$(nvcc_release "$home" 2>/dev/null || true)
    [ -n "$release" ] || die "$home/bin/nvcc does not run or print its release (nvcc --version); $fix"
    if [ "$exact" = exact ]; then
        [ "$release" = "$want" ] || die "nvcc in $home is CUDA $release, torch was built with CUDA $want; $fix"
    elif [ "${release%%.*}" != "${want%%.*}" ]; then
        die "nvcc in $home is CUDA $release, torch was built with CUDA $want; $fix"
    fi
    for header in cuda_runtime.h crt/host_config.h; do
        [ -f "$home/include/$header" ] || missing="$missing $header"
    done
    [ -z "$missing" ] || die "CUDA headers missing in $home/include:$missing; $fix"
}

# The oldest NVIDIA driver that runs CUDA $1 (major) with minor-version compatibility; empty if not known here.
min_driver() { case $1 in 11) echo 450 ;; 12) echo 525 ;; 13) echo 580 ;; *) echo '' ;; esac; }
# Stops when nvidia-smi reports a driver too old for torch's CUDA (such a torch sees no GPU), with what to do.
check_driver() {
    local major=${TORCH_CUDA%%.*} need have smi=${NVIDIA_SMI:-nvidia-smi}
    need=$(min_driver "$major")
    [ -n "$need" ] || return 0
    if [ "${CUDA_DRIVER_CHECK:-1}" = 0 ]; then
        log "CUDA_DRIVER_CHECK=0: the NVIDIA driver is not checked (CUDA $major needs >= $need where it runs)"
        return 0
    fi
    if ! command -v "$smi" >/dev/null 2>&1; then
        log "no $smi: the NVIDIA driver is not checked; torch with CUDA $TORCH_CUDA needs driver >= $need where" \
            "it runs (older: a cu12x torch, see CUDA_TORCH_PIP_ARGS)"
        return 0
    fi
    have=$("$smi" --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -n1 | tr -d ' \r' || true)
    case ${have%%.*} in
        ''|*[!0-9]*)
            log "$smi gives no driver version ('$have'): the NVIDIA driver is not checked; CUDA $major needs >= $need"
            return 0 ;;
    esac
    if [ "${have%%.*}" -lt "$need" ]; then
        die "NVIDIA driver $have is older than $need, which torch built with CUDA $TORCH_CUDA needs: it would not \
see the GPU. Either update the driver to >= $need, or use a torch built for a CUDA this driver runs (CUDA 12: \
driver >= 525) with a matching system toolkit: '$PY -m pip uninstall -y torch', then rerun with \
CUDA_TORCH_PIP_ARGS='--index-url https://download.pytorch.org/whl/cu128' (a cu12x index that has torch \
$TORCH_VERSION, else set TORCH_VERSION too) and CUDA_HOME=<a CUDA 12 toolkit> CUDA_TOOLKIT=system (CUDA from PyPI \
needs CUDA >= 13). CUDA_DRIVER_CHECK=0 skips this check (building for another machine)."
    fi
    log "NVIDIA driver $have (CUDA $major needs >= $need)"
}

# PyPI packages holding CUDA's compiler and headers at torch's CUDA version: the cuda-toolkit meta-package version
# that torch pins (torch >= 2.10 with CUDA 13), else the individual wheels at torch's CUDA major.minor.
pypi_toolkit_packages() {
    local pinned
    pinned=$("$PY" -c "import re; from importlib.metadata import requires
print(next((m.group(1) for r in requires('torch') or () for m in [re.match(r'cuda-toolkit\[.*\]\s*==\s*([\w.]+)', r)]
           if m), ''))")
    if [ -n "$pinned" ]; then
        echo "cuda-toolkit[nvcc,cccl,crt,nvvm,cudart,cublas,cusparse,cusolver]==$pinned"
    else
        echo "nvidia-cuda-nvcc==$TORCH_CUDA.* nvidia-nvvm==$TORCH_CUDA.* nvidia-cuda-crt==$TORCH_CUDA.*" \
             "nvidia-cuda-cccl==$TORCH_CUDA.* nvidia-cuda-runtime==$TORCH_CUDA.*"
    fi
}

# FORCE_CUDA=1: a CUDA torch, then CUDA_HOME, TORCH_CUDA_ARCH_LIST and the build environment (CUDA_ENV).
setup_cuda() {
    export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-8.0;9.0}
    if ! probe "import torch; assert torch.version.cuda"; then
        log "torch in $VENV has no CUDA: installing the CUDA build of torch $TORCH_VERSION"
        probe "import importlib.util as u; assert u.find_spec('torch')" && run "$PY" -m pip uninstall -y torch
        # shellcheck disable=SC2086  # CUDA_TORCH_PIP_ARGS is a list of options
        pip_install ${CUDA_TORCH_PIP_ARGS---isolated} "torch==$TORCH_VERSION"
        if [ "$DRY_RUN" = 1 ]; then log "dry run: the rest depends on that torch"; exit 0; fi
        probe "import torch; assert torch.version.cuda" \
            || die "torch $TORCH_VERSION installed without CUDA; set CUDA_TORCH_PIP_ARGS (e.g. '--index-url \
https://download.pytorch.org/whl/cu130') to choose a CUDA build"
    fi
    TORCH_CUDA=$("$PY" -c "import torch; print(torch.version.cuda)")
    check_driver
    local major=${TORCH_CUDA%%.*} toolkit=${CUDA_TOOLKIT:-auto} home='' release='' installed=0 packages
    case $toolkit in auto|system|pypi) ;; *) die "CUDA_TOOLKIT=$toolkit: use auto, system or pypi" ;; esac
    if [ "$toolkit" != pypi ] && home=$(system_cuda_home); then
        release=$(nvcc_release "$home")
        if [ "${release%%.*}" != "$major" ]; then
            [ "$toolkit" = system ] && die "nvcc in $home is CUDA $release, torch was built with CUDA $TORCH_CUDA: \
install a CUDA $major toolkit, or CUDA_TOOLKIT=pypi"
            log "system nvcc ($home) is CUDA $release, torch needs CUDA $major: using CUDA from PyPI"
            home=''
        fi
    elif [ "$toolkit" = system ]; then
        die "CUDA_TOOLKIT=system but no CUDA toolkit found (CUDA_HOME, nvcc on PATH, /usr/local/cuda)"
    fi
    if [ -z "$home" ]; then
        [ "$major" -ge 13 ] || die "CUDA from PyPI needs torch built with CUDA >= 13 (this one: $TORCH_CUDA); \
install a CUDA $major toolkit and set CUDA_HOME"
        home=$(nvidia_dir "cu$major" bin/nvcc)
        [ -n "$home" ] || home=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")/nvidia/cu$major
        if ! { [ -d "$home/nvvm/bin" ] && [ -d "$home/include/crt" ] && [ -d "$home/include/cccl" ] \
               && [ -f "$home/bin/nvcc" ] && [ "$(nvcc_release "$home" 2>/dev/null)" = "$TORCH_CUDA" ]; }; then
            read -r -a packages <<<"$(pypi_toolkit_packages)"
            pip_install ${packages[@]+"${packages[@]}"}
            installed=1
        fi
        # The wheels lose the executable bits of nvcc & co and ship libcudart.so.N without the libcudart.so that
        # torch's extension build links with (-lcudart); nvcc.profile looks for the headers under targets/.
        [ -x "$home/bin/nvcc" ] && [ -x "$home/nvvm/bin/cicc" ] || run chmod +x "$home"/bin/* "$home"/nvvm/bin/*
        [ -e "$home/lib/libcudart.so" ] || run ln -s "libcudart.so.$major" "$home/lib/libcudart.so"
        if [ "$DRY_RUN" = 1 ] && [ "$installed" = 1 ]; then
            log "dry run: nvcc's release and the headers are checked once CUDA is installed from PyPI"
        else
            check_toolkit "$home" "$TORCH_CUDA" exact "reinstall CUDA from PyPI ('$PY -m pip install \
--force-reinstall $(pypi_toolkit_packages)'), or build with a system CUDA $major toolkit (CUDA_HOME=..., \
CUDA_TOOLKIT=system)"
        fi
        release=$TORCH_CUDA
        log "CUDA $release compiler and headers from PyPI: $home"
    else
        check_toolkit "$home" "$TORCH_CUDA" major "repair or reinstall the CUDA toolkit in $home, point CUDA_HOME to \
a complete CUDA $major toolkit, or use CUDA_TOOLKIT=pypi"
        log "system CUDA $release toolkit: $home"
    fi
    CUDA_HOME=$home
    # Include folders nvcc.profile does not add for a toolkit laid out like the PyPI wheels (no targets/ folder):
    # CCCL (CUB, Thrust, libcu++, also needed by g++ for the .cpp files), and the headers of the CUDA libraries that
    # torch's ATen/cuda headers include (cuBLAS, cuSPARSE, cuSOLVER), which torch's nvidia-* wheels hold.
    local extra cpath=''
    extra=$(nvidia_dir "cu$major" include/cublas_v2.h)
    [ -d "$CUDA_HOME/include/cccl" ] && cpath=$CUDA_HOME/include/cccl
    if [ ! -f "$CUDA_HOME/include/cublas_v2.h" ] && [ -n "$extra" ]; then cpath=$cpath${cpath:+:}$extra/include; fi
    CUDA_ENV=(CUDA_HOME="$CUDA_HOME" FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST="$TORCH_CUDA_ARCH_LIST")
    [ -z "$cpath" ] || CUDA_ENV+=(CPATH="$cpath${CPATH:+:$CPATH}")
    log "mmcv CUDA ops for torch $("$PY" -c 'import torch; print(torch.__version__)'), nvcc CUDA $release," \
        "TORCH_CUDA_ARCH_LIST=$TORCH_CUDA_ARCH_LIST"
}

build_mmcv() {
    log "building mmcv $MMCV_VERSION with ops (FORCE_CUDA=$FORCE_CUDA); first build takes ~10 min on 2 cores" \
        "(CPU), ~25 min per GPU architecture on 2 cores (CUDA)"
    local start=$SECONDS
    if [ "$FORCE_CUDA" = 1 ] && [ -n "${MMCV_WHEEL_DIR:-}" ]; then  # the wheel into MMCV_WHEEL_DIR, installed from there
        run rm -f "$MMCV_WHEEL_DIR/mmcv-build.txt" "$MMCV_WHEEL_DIR"/mmcv-"$MMCV_VERSION"-*.whl
        # linked without debug sections: mmcv's _ext for one architecture is 109 MB with them, 27 MB without (a
        # wheel of about 6 MB instead of 41, small enough to be carried to a GPU machine with the checkout)
        run env ${CUDA_ENV[@]+"${CUDA_ENV[@]}"} MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
            LDFLAGS="${LDFLAGS:+$LDFLAGS }-Wl,--strip-debug" \
            "$PY" -m pip wheel --no-build-isolation --no-cache-dir --no-deps -w "$MMCV_WHEEL_DIR" "mmcv==$MMCV_VERSION"
        pip_install --no-deps --force-reinstall "$MMCV_WHEEL_DIR"/mmcv-"$MMCV_VERSION"-*.whl
    else
        run env ${CUDA_ENV[@]+"${CUDA_ENV[@]}"} MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
            "$PY" -m pip install --no-build-isolation "$@" "mmcv==$MMCV_VERSION"
    fi
    [ "$DRY_RUN" = 1 ] || log "mmcv build took $((SECONDS - start)) s"
}
# MMCV_WHEEL_DIR's prebuilt wheel, if its recorded build is BUILD_ID: installed, and true if it then imports.
prebuilt_mmcv() {
    local dir=${MMCV_WHEEL_DIR:-} wheel
    [ -n "$dir" ] && [ -f "$dir/mmcv-build.txt" ] || return 1
    wheel=$(ls "$dir"/mmcv-"$MMCV_VERSION"-*.whl 2>/dev/null | head -n 1 || true)
    if [ -z "$wheel" ] || [ "$(cat "$dir/mmcv-build.txt")" != "$BUILD_ID" ]; then
        log "no prebuilt mmcv in $dir for '$BUILD_ID' (it has '$(cat "$dir/mmcv-build.txt")'${wheel:+, $(basename "$wheel")}): building"
        return 1
    fi
    log "installing the prebuilt $(basename "$wheel") ($BUILD_ID): no build"
    pip_install --no-deps --force-reinstall "$wheel"
    [ "$DRY_RUN" = 1 ] && return 0
    echo "$BUILD_ID" >"$STAMP"
    probe "$MMCV_OK" && return 0
    log "the prebuilt mmcv does not import here ($("$PY" -c "$MMCV_OK" 2>&1 | tail -n 1)): building"
    rm -f "$STAMP"
    return 1
}
main() {  # the whole run is parsed before it starts: editing this file meanwhile cannot change a run
    if [ ! -x "$PY" ]; then
        log "creating $VENV"
        run python3 -m venv "$VENV"
        if [ "$DRY_RUN" = 1 ]; then log "dry run: the rest depends on that venv"; exit 0; fi
    fi
    reqs_ok requirements/build.txt || pip_install -r requirements/build.txt
    CUDA_ENV=()
    if [ "$FORCE_CUDA" = 1 ]; then
        setup_cuda
    else
        probe "import importlib.util as u; assert u.find_spec('torch')" || pip_install "torch==$TORCH_VERSION"
    fi
    reqs_ok requirements/runtime.txt || pip_install -r requirements/runtime.txt

    MMCV_OK="import mmcv, mmcv.ops; assert mmcv.__version__ == '$MMCV_VERSION'"
    STAMP=$VENV/mmcv-build.txt
    if [ "$FORCE_CUDA" = 1 ]; then
        BUILD_ID="mmcv $MMCV_VERSION torch $("$PY" -c 'import torch; print(torch.__version__)') CUDA $TORCH_CUDA"
        BUILD_ID="$BUILD_ID arch $TORCH_CUDA_ARCH_LIST"
        MMCV_OK="$MMCV_OK; from mmcv.ops import get_compiling_cuda_version as v; assert v() != 'not available'"
        # the CUDA ops must also be those of this torch and architecture list (a CPU-only mmcv fails the check above)
        MMCV_OK="$MMCV_OK; assert open('$STAMP').read().strip() == '$BUILD_ID'"
    fi
    if ! probe "$MMCV_OK"; then
        if [ "$FORCE_CUDA" = 1 ]; then
            # pip's wheel cache is keyed by the sdist, not by torch, FORCE_CUDA or the architectures: never use it.
            if ! prebuilt_mmcv; then
                run rm -f "$STAMP"
                build_mmcv --no-cache-dir --force-reinstall --no-deps
                [ "$DRY_RUN" = 1 ] || echo "$BUILD_ID" >"$STAMP"
                [ "$DRY_RUN" = 1 ] || [ -z "${MMCV_WHEEL_DIR:-}" ] || echo "$BUILD_ID" >"$MMCV_WHEEL_DIR/mmcv-build.txt"
            fi
        else
            build_mmcv
            # a wheel cached from a build against another torch fails to load _ext: rebuild without the cache.
            [ "$DRY_RUN" = 1 ] || probe "$MMCV_OK" || build_mmcv --no-cache-dir --force-reinstall --no-deps
        fi
        [ "$DRY_RUN" = 1 ] || "$PY" -c "$MMCV_OK" || die "mmcv $MMCV_VERSION with ops does not import (see above)"
    fi
    # mmkd itself, editable, from this checkout (with the venv's setuptools < 81: mmengine needs pkg_resources).
    # --use-pep517: without it pip runs setuptools' legacy `setup.py develop`, which since setuptools 80 calls pip
    # again *with* build isolation, i.e. fetches setuptools and wheel from an index: that fails offline
    # (PIP_NO_INDEX, the GPU machine's offline install) although the venv has every build requirement.
    # The check runs from / so that the checkout's own mmkd/ folder does not answer it.
    ROOT=$PWD
    (cd / && "$PY" -c "import importlib.util as u, os, sys; s = u.find_spec('mmkd')
sys.exit(s is None or os.path.realpath(s.origin) != os.path.realpath(sys.argv[1]))" "$ROOT/mmkd/__init__.py") \
        || pip_install -e . --no-build-isolation --use-pep517 --no-deps
    for extra in "$@"; do
        reqs_ok "$extra" || pip_install -r "$extra"
    done
    log "environment ready: $VENV"
}
main "$@"
