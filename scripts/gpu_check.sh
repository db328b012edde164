#!/usr/bin/env bash
# The command for the GPU machine (see scripts/gpu_check.py). Prepared here first:
#   python scripts/gpu_check.py prepare   # .gpu_check/: wheels + reduced CIFAR-10 copy
#   python scripts/gpu_check.py size      # what travels; refuses above 64 MiB
# then run there with .gpu_check carried:  bash scripts/gpu_check.sh
# It installs the carried wheels (the image has torch, no Avalanche or W&B) and writes its
# files to $OUT (gpu_check.json, tests.log, table.md, environment.json, grid.tar.gz).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d .gpu_check/wheels ] || [ ! -d .gpu_check/data ]; then
    echo "gpu_check.sh: .gpu_check/ is missing; run 'python scripts/gpu_check.py prepare' and carry it" >&2
    exit 2
fi
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .gpu_check/wheels/*.whl
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1 WANDB_MODE=disabled MPLBACKEND=Agg
export ALPHA_MAS_DATA_ROOT="$PWD/.gpu_check/data"
timeout 480 python3 scripts/gpu_check.py run --out "${OUT:-gpu_check_out}" "$@"

# Data parallel under NCCL (needs 2 GPUs: NCCL takes one GPU per rank) and MNIST under
# $DDP_DATA_ROOT/mnist (not in .gpu_check/): examples/ddp.py trains 2 experiences on 2
# ranks, then resumes from its checkpoint for a third. Skipped, with the reason, otherwise.
OUT_DIR="${OUT:-gpu_check_out}"
mkdir -p "$OUT_DIR"
GPUS=$(python3 -c "import torch; print(torch.cuda.device_count())")
if [ "$GPUS" -ge 2 ] && [ -d "${DDP_DATA_ROOT:-/nonexistent}/mnist" ]; then
    for until in 2 3; do
        timeout 300 python3 -m torch.distributed.run --nproc_per_node 2 examples/ddp.py --data-root "$DDP_DATA_ROOT" \
            --checkpoint "$OUT_DIR/ddp_ckpt.pt" --train-samples 1024 --until "$until" \
            >>"$OUT_DIR/ddp_nccl.log" 2>&1
    done
    rm -f "$OUT_DIR/ddp_ckpt.pt"
else
    echo "data-parallel NCCL step skipped: $GPUS GPU(s), DDP_DATA_ROOT=${DDP_DATA_ROOT:-unset}" \
        | tee "$OUT_DIR/ddp_nccl.log"
fi
