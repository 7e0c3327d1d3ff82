#!/usr/bin/env bash
# Makes the reference runs that notebooks 03 and 04 draw beside a learner's own run.
# About 12 minutes per seed on a 2-core laptop CPU; a GPU is much faster (add --device cuda).
set -euo pipefail
cd "$(dirname "$0")/../.."
for seed in 0 1 2; do
  .venv/bin/lthkit imp --dataset mnist --model lenet300 --rounds 20 --epochs 5 \
    --controls reinit,random --seed "$seed" --out "runs/reference-seed$seed" --quiet --resume
  cp "runs/reference-seed$seed/results.json" "notebooks/reference/mnist-lenet300-seed$seed.json"
done
