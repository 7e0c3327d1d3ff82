#!/usr/bin/env bash
# The checks that need a CUDA GPU, as one script for a lent machine (see README, "Same seed, same
# numbers" and "Speed"): the tests skipped elsewhere, then the speed benchmark on CUDA.
#   OUT=dir bash benchmarks/gpu_checks.sh   (MNIST's four .gz files in data/MNIST/raw, or in
#                                           .gpu-data/MNIST/raw, copied to data/ first)
set -uo pipefail
OUT=${OUT:-build/gpu-checks}
mkdir -p "$OUT" data
[ -d .gpu-data ] && cp -r --update=none .gpu-data/. data/
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/device.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$OUT/device.txt"
status=0
python3 -m pytest -q -p no:cacheprovider -rA -k "cuda or gpu" \
    tests/test_masks.py tests/test_cli.py tests/test_imp.py tests/test_rewinding.py 2>&1 | tee "$OUT/tests.log" || status=1
PYTHONPATH=. timeout "${SPEED_TIMEOUT:-300}" python3 benchmarks/speed.py --device cuda --out "$OUT/speed-cuda.json" 2>&1 \
    | tee "$OUT/speed.log" || status=1
exit $status
