#!/usr/bin/env bash
# Usage: tools/dist_distill.sh TEACHER_CONFIG STUDENT_CONFIG GPUS --teacher-ckpt CKPT --method METHOD [distill.py args...]
# Writes the distillation config (tools/distill.py) and trains it with GPUS processes, as tools/dist_train.sh does;
# without CUDA each process trains on the CPU (gloo backend). Every process writes the same config (atomically).
# Python: $PYTHON if set, else <checkout>/.venv/bin/python when it exists (no need to activate it), else `python`.

TEACHER=$1
STUDENT=$2
GPUS=$3
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
if [ -z "${PYTHON:-}" ]; then
    if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python; fi
fi

PYTHONPATH="$ROOT":$PYTHONPATH \
"$PYTHON" -m torch.distributed.run \
    --nnodes=$NNODES \
    --node_rank=$NODE_RANK \
    --master_addr=$MASTER_ADDR \
    --nproc_per_node=$GPUS \
    --master_port=$PORT \
    "$ROOT"/tools/distill.py \
    "$TEACHER" \
    "$STUDENT" \
    --launcher pytorch "${@:4}"
