#!/usr/bin/env bash
# mmkd's GPU check: the one command to run on a GPU machine that has Python with a CUDA torch and nvcc, but no
# network and none of mmkd's other requirements. Writes a few small files (<= 8) to one results folder.
#
#   tools/misc/gpu_check.sh prepare [--wheelhouse DIR] [--python PY3.12] [--mmcv-wheel [--torch V]] [--dry-run]
#   tools/misc/gpu_check.sh run [--out DIR] [--wheelhouse DIR] [--python PY] [--venv DIR] [--budget SECONDS]
#                               [--steps env,install,tests,bench,demo] [--dry-run | --cpu]
#
# prepare: downloads into DIR (default .wheelhouse/gpu-py312, ignored by git, about 8 MB) the Python 3.12
#   wheels of what the GPU machine lacks (mmengine, mmdet, mmrazor, pycocotools, shapely, ... and setuptools < 81)
#   and the mmcv 2.1.0 sdist, with tools/misc/offline_install_gpu.sh; packages the GPU image already has
#   (numpy, opencv-python-headless, matplotlib, scipy, pytest, ...) are left out (GPU_IMAGE_HAS below).
#   --mmcv-wheel: also builds there mmcv 2.1.0's CUDA ops as a wheel for the GPU image's Python and torch (--torch,
#   default 2.11.0, the CUDA build from PyPI) and TORCH_CUDA_ARCH_LIST (default 9.0), in a build venv next to DIR
#   (install.sh with MMCV_WHEEL_DIR=DIR; about 40 min on 2 cores). `run` then installs that wheel instead of
#   compiling on the GPU machine's clock; a wheel recorded for another torch/CUDA/architecture is not used.
# run, in order, each step timed and logged, a failed step not stopping the next ones:
#   env      machine, GPU, torch, nvcc                                                  -> env.txt
#   install  a venv at --venv (default /tmp/mmkd-gpu-venv) that extends PY's environment (its packages, torch
#            included, stay visible), the wheelhouse installed into it offline, mmcv 2.1.0 built from the sdist
#            with CUDA ops for TORCH_CUDA_ARCH_LIST (default 9.0) on all cores (timed), mmkd (editable): that is
#            tools/misc/offline_install_gpu.sh install, i.e. tools/misc/install.sh with FORCE_CUDA=1      -> install.log
#   tests    pytest tests/test_gpu (CUDA tests) and a few CPU test files                     -> pytest.txt
#   bench    tools/analysis/benchmark_distill.py, R101 -> R50 ND at 1333x800, batch 2, on the GPU: fp32, then
#            mixed precision (float16 autocast and loss scaling, as --amp)    -> bench_fp32.json, bench_amp.json
#            then ReviewKD++ (fp32; student, teacher_fwd, mmkd and --op-breakdown): docs/speed.md's 1.10 -> bench.log
#   demo     the detection demo (tools/analysis/run_demo.py: teacher, student alone and with ND) on the GPU, in
#            the time left of --budget (default 540 s: one device call of at most 10 minutes)        -> demo.md
#   and summary.md: each step's status and time, the mmcv build time, the test summary, the benchmark tables.
# --out: results folder (default $OUT if set, else gpu_check_results). --dry-run: print the plan (every command),
# run nothing. --cpu: a rehearsal on a machine without a GPU, with PY's environment as it is (no venv, the
# install step only prints install.sh's plan): the GPU tests skip, the benchmark (demo R50 -> R18 config) and
# the demo run tiny on the CPU.
set -euo pipefail
{  # the whole script is parsed before it runs: editing the file meanwhile cannot change a run
cd "$(dirname "$0")/../.."

# on the GPU image already (the wheelhouse leaves them out)
GPU_IMAGE_HAS=(wheel ninja numpy packaging pyyaml rich markdown-it-py mdurl pygments opencv-python matplotlib
               contourpy cycler fonttools kiwisolver pillow pyparsing python-dateutil six scipy tqdm joblib pytest
               iniconfig pluggy tomli exceptiongroup)
CONFIG=configs/faster_rcnn_r101_r50_nd.py
REVIEWKDPP_CONFIG=configs/faster_rcnn_r101_r50_reviewkdpp.py
CPU_TESTS=(tests/test_models/test_algorithms/test_roi_distill.py tests/test_models/test_losses
           tests/test_structures/test_class_means.py)

usage() { sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "gpu_check: error: $*" >&2; exit 2; }

case ${1:-} in
    prepare|run) CMD=$1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
esac
WHEELHOUSE=.wheelhouse/gpu-py312 PY='' VENV=/tmp/mmkd-gpu-venv OUT_DIR=${OUT:-gpu_check_results} BUDGET=540
STEPS=env,install,tests,bench,demo MODE=gpu MMCV_WHEEL=0 GPU_TORCH=2.11.0
while [ $# -gt 0 ]; do
    case $1 in
        --wheelhouse) WHEELHOUSE=${2:?}; shift 2 ;;
        --python) PY=${2:?}; shift 2 ;;
        --venv) VENV=${2:?}; shift 2 ;;
        --out) OUT_DIR=${2:?}; shift 2 ;;
        --budget) BUDGET=${2:?}; shift 2 ;;
        --steps) STEPS=${2:?}; shift 2 ;;
        --dry-run) MODE=dry; shift ;;
        --cpu) MODE=cpu; shift ;;
        --mmcv-wheel) MMCV_WHEEL=1; shift ;;
        --torch) GPU_TORCH=${2:?}; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done
case $BUDGET in ''|*[!0-9]*) die "--budget takes whole seconds, got '$BUDGET'" ;; esac
for step in ${STEPS//,/ }; do
    case $step in env|install|tests|bench|demo) ;; *) die "unknown step '$step' in --steps" ;; esac
done

if [ "$CMD" = prepare ]; then
    excludes=()
    for name in "${GPU_IMAGE_HAS[@]}"; do excludes+=(--exclude "$name"); done
    [ "$MODE" = dry ] && excludes+=(--dry-run)
    PY=${PY:-$HOME/.pyenv/versions/3.12.1/bin/python}
    bash tools/misc/offline_install_gpu.sh download --wheelhouse "$WHEELHOUSE" --python "$PY" --python-version 3.12 \
        "${excludes[@]}"
    [ "$MMCV_WHEEL" = 1 ] || exit 0
    # the wheel: install.sh in a build venv of PY with the GPU image's torch (its CUDA build from PyPI), the sdist
    # just downloaded, and no driver check (this machine needs none to compile)
    BUILD_VENV=$WHEELHOUSE-build-venv
    echo "+ $PY -m venv $BUILD_VENV  (if missing)"
    [ "$MODE" = dry ] || [ -x "$BUILD_VENV/bin/python" ] || "$PY" -m venv "$BUILD_VENV"
    wheelhouse=$(cd "$WHEELHOUSE" 2>/dev/null && pwd || echo "$WHEELHOUSE")
    build=(env VENV="$BUILD_VENV" TORCH_VERSION="$GPU_TORCH" FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}"
           MMCV_WHEEL_DIR="$wheelhouse" PIP_FIND_LINKS="$wheelhouse" CUDA_DRIVER_CHECK=0 bash tools/misc/install.sh)
    echo "+ $(printf '%q ' "${build[@]}")"
    [ "$MODE" = dry ] && exit 0
    "${build[@]}"
    echo "mmcv wheel: $(ls "$WHEELHOUSE"/mmcv-*.whl) for '$(cat "$WHEELHOUSE/mmcv-build.txt")'"
    size=$(du -sm --exclude='*-build-venv' "$WHEELHOUSE" | cut -f1)
    echo "wheelhouse: $size MiB (the device tool carries at most 64 MiB with the checkout)"
    [ "$size" -le 60 ] || echo "warning: $WHEELHOUSE is $size MiB: too large to carry; run without the mmcv wheel" >&2
    exit 0
fi

# ---------------------------------------------------------------------------------------------------- run
PY=${PY:-python3}
START=$SECONDS
[ "$MODE" = dry ] || mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" 2>/dev/null && pwd || echo "$OUT_DIR")
WORK=$(mktemp -d -u /tmp/mmkd-gpu-check.XXXXXX)  # scratch (demo work dirs and data), not returned
SUMMARY=$OUT_DIR/summary.md
if [ "$MODE" = cpu ]; then VPY=$PY; DEVICE=cpu; else VPY=$VENV/bin/python; DEVICE=cuda; fi

say() { if [ "$MODE" = dry ]; then echo "$*"; else echo "$*" | tee -a "$SUMMARY"; fi; }
wants() { [[ ",$STEPS," == *",$1,"* ]]; }
left() { echo $((BUDGET - (SECONDS - START))); }
# step NAME LOG TIMEOUT CMD...: run CMD with its output in LOG (appended), at most TIMEOUT seconds; record it.
step() {
    local name=$1 log=$2 limit=$3 start=$SECONDS rc=0 avail
    shift 3
    avail=$(left)
    if [ "$MODE" != dry ] && [ "$avail" -lt 20 ]; then
        echo "| $name | skipped: ${avail}s left of --budget $BUDGET | 0 |" >>"$OUT_DIR/.steps"
        return 0
    fi
    [ "$MODE" = dry ] || [ "$limit" -le "$avail" ] || limit=$avail
    echo "+ [$name, <= ${limit}s, > $(basename "$log")] $(printf '%q ' "$@")"
    [ "$MODE" = dry ] && return 0
    echo "+ $(printf '%q ' "$@")" >>"$log"
    if declare -F "$1" >/dev/null; then  # a function of this script (quick): no timeout
        "$@" >>"$log" 2>&1 || rc=$?
    else
        timeout --kill-after=10 "$limit" "$@" >>"$log" 2>&1 || rc=$?
    fi
    local verdict=ok
    if [ "$rc" = 124 ]; then verdict="FAILED (timed out after ${limit}s)"; elif [ "$rc" != 0 ]; then
        verdict="FAILED (exit $rc)"; fi
    echo "| $name | $verdict | $((SECONDS - start)) |" >>"$OUT_DIR/.steps"
    echo "[gpu_check] $name: $verdict in $((SECONDS - start)) s"
    return 0
}

[ "$MODE" = dry ] || { : >"$SUMMARY"; : >"$OUT_DIR/.steps"; }
say "# mmkd GPU check ($MODE mode), $(date -u +%FT%TZ)"
say ""

if wants env; then
    env_report() {
        echo "host: $(uname -a)"
        echo "cpus: $(nproc); memory: $(free -g 2>/dev/null | awk '/Mem:/ {print $2 " GiB"}')"
        local smi
        smi=$(command -v nvidia-smi || ls /usr/local/nvidia/bin/nvidia-smi 2>/dev/null || true)
        if [ -n "$smi" ]; then "$smi" --query-gpu=name,memory.total,driver_version --format=csv; else
            echo "nvidia-smi: not found"; fi
        echo "python: $PY = $(command -v "$PY") ($("$PY" --version 2>&1))"
        "$PY" -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, 'available',
torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
        echo "nvcc: $(command -v nvcc || echo none); CUDA_HOME=${CUDA_HOME:-unset}"
        nvcc --version 2>/dev/null | tail -n 2 || true
        "$PY" -m pip list 2>/dev/null | grep -i -E '^(torch|numpy|opencv|setuptools|mm|pycocotools|pytest) ' || true
    }
    step env "$OUT_DIR/env.txt" 60 env_report
fi

if wants install; then
    if [ "$MODE" = cpu ]; then  # the plans only: install.sh on PY's environment, the offline GPU install
        VENV_OF_PY=$("$PY" -c "import sys; print(sys.prefix)")
        step install "$OUT_DIR/install.log" 120 env VENV="$VENV_OF_PY" DRY_RUN=1 bash tools/misc/install.sh
        step install-gpu-plan "$OUT_DIR/install.log" 60 bash tools/misc/offline_install_gpu.sh install \
            --wheelhouse "$WHEELHOUSE" --python "$VENV/bin/python" --dry-run
    else
        # A venv that sees PY's packages (torch, numpy, opencv, ...) through a .pth file, whatever PY is (a venv
        # itself, whose --system-site-packages would be its base's): installs go into it, PY stays untouched.
        make_venv() {
            "$PY" -m venv --without-pip "$VENV"
            local purelib
            purelib=$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
            "$PY" -c "import site, sys; print('\n'.join(p for p in sys.path if p.endswith('-packages')))" \
                >"$purelib/_gpu_check_base.pth"
            "$VENV/bin/python" -c "import pip, torch; print('the venv sees torch', torch.__version__, 'and pip',
pip.__version__)"
        }
        step venv "$OUT_DIR/install.log" 60 make_venv
        step install "$OUT_DIR/install.log" 420 env \
            TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}" MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
            bash tools/misc/offline_install_gpu.sh install --wheelhouse "$WHEELHOUSE" --python "$VPY"
    fi
fi

if wants tests; then
    step tests "$OUT_DIR/pytest.txt" 300 env PYTHONUNBUFFERED=1 "$VPY" -m pytest tests/test_gpu -v -rs \
        -p no:cacheprovider
    if [ "$MODE" != cpu ]; then
        step tests-cpu "$OUT_DIR/pytest.txt" 180 "$VPY" -m pytest "${CPU_TESTS[@]}" -q -p no:cacheprovider
    fi
fi

if wants bench; then
    if [ "$MODE" = cpu ]; then
        # the demo's R50 -> R18 pair: three R101/R50 models take minutes to build on 2 busy cores
        BENCH=(configs/demo/faster_rcnn_r50_r18_nd.py --device cpu --img-size 64 48 --batch-size 1 --warmup 0
               --repeats 1) BENCH_LIMIT=600
    else
        BENCH=("$CONFIG" --device cuda --img-size 1333 800 --batch-size 2) BENCH_LIMIT=200
    fi
    # ReviewKD++ against the 1.10 goal of a distiller with connectors: the same pair (R101 -> R50), size and device;
    # its text output only (the device tool returns at most 8 files)
    REVIEWKDPP=("$REVIEWKDPP_CONFIG" "${BENCH[@]:1}")
    if [ "$MODE" = cpu ]; then  # 2 images: the connector's BatchNorms refuse one 1x1 map at P6
        REVIEWKDPP=(configs/demo/faster_rcnn_r50_r18_reviewkdpp.py --device cpu --img-size 64 48 --batch-size 2
                    --warmup 0 --repeats 1)
    fi
    step bench-fp32 "$OUT_DIR/bench.log" "$BENCH_LIMIT" "$VPY" tools/analysis/benchmark_distill.py "${BENCH[@]}" \
        --json "$OUT_DIR/bench_fp32.json"
    # mixed precision as tools/train.py --amp (GPU: AmpOptimWrapper, float16 + loss scaling; CPU:
    # CPUAmpOptimWrapper, bfloat16), the teacher forward under the same autocast: the benchmark's own --amp
    step bench-amp "$OUT_DIR/bench.log" "$BENCH_LIMIT" "$VPY" tools/analysis/benchmark_distill.py "${BENCH[@]}" \
        --amp --json "$OUT_DIR/bench_amp.json"
    step bench-reviewkdpp "$OUT_DIR/bench.log" "$BENCH_LIMIT" "$VPY" tools/analysis/benchmark_distill.py \
        "${REVIEWKDPP[@]}" --modes student teacher_fwd mmkd --op-breakdown 12
fi

if wants demo; then
    if [ "$MODE" = cpu ]; then
        DEMO=(--num-train 8 --num-heldout 2 --num-val 4 --rows baseline nd --teacher-iters 4 --student-iters 4)
    else
        DEMO=(--rows baseline nd --jobs 2)
    fi
    remaining=$(left)
    if [ "$MODE" != dry ] && [ "$remaining" -lt 90 ]; then
        echo "| demo | skipped: ${remaining}s left of --budget $BUDGET | 0 |" >>"$OUT_DIR/.steps"
    else
        step demo "$WORK.demo.log" $((remaining > 90 ? remaining - 20 : 70)) "$VPY" tools/analysis/run_demo.py \
            --work-dir "$WORK/demo" --data-root "$WORK/data" "${DEMO[@]}"
        if [ "$MODE" != dry ]; then
            { cat "$WORK/demo/results.md" 2>/dev/null || { echo "no results.md; the run's last lines:";
              tail -n 40 "$WORK.demo.log"; }; } >"$OUT_DIR/demo.md"
        fi
    fi
fi

[ "$MODE" = dry ] && exit 0
# ------------------------------------------------------------------------------------------------ summary
{
    echo "| step | result | seconds |"
    echo "|---|---|---|"
    cat "$OUT_DIR/.steps"
    echo
    echo "total: $((SECONDS - START)) s of --budget $BUDGET"
    echo
    grep -h -E 'mmcv build took|mmcv ops CUDA|environment ready|ERROR' "$OUT_DIR/install.log" 2>/dev/null || true
    grep -h -E '^(=+ .* (passed|failed|skipped|error).* =+|[0-9]+ (passed|failed|skipped).*)$' \
        "$OUT_DIR/pytest.txt" 2>/dev/null || true
    grep -h -E '^(FAILED|ERROR) ' "$OUT_DIR/pytest.txt" 2>/dev/null | head -n 20 || true
    if [ -f "$OUT_DIR/bench.log" ]; then
        echo
        echo '```'
        grep -E '^(configs|mode|student|teacher_fwd|mmrazor|mmkd|amp:|operators?|aten::|\w+Function|Traceback|\w+Error)' \
            "$OUT_DIR/bench.log" || true
        echo '```'
    fi
    [ -f "$OUT_DIR/demo.md" ] && { echo; cat "$OUT_DIR/demo.md"; }
} >>"$SUMMARY"
rm -f "$OUT_DIR/.steps"
# install.log can be long (compiler warnings): keep its head and tail
if [ -f "$OUT_DIR/install.log" ] && [ "$(wc -l <"$OUT_DIR/install.log")" -gt 700 ]; then
    { head -n 200 "$OUT_DIR/install.log"; echo "[... $(wc -l <"$OUT_DIR/install.log") lines, cut ...]";
      tail -n 400 "$OUT_DIR/install.log"; } >"$OUT_DIR/install.log.cut"
    mv "$OUT_DIR/install.log.cut" "$OUT_DIR/install.log"
fi
rm -f "$WORK.demo.log"
cat "$SUMMARY"
exit 0
}
