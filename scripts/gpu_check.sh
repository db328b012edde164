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
