#!/usr/bin/env bash
# The checks that need a CUDA GPU, as one script for a lent machine (see README, "Same seed, same
# numbers", "Speed" and "Many networks in one step"): the tests skipped elsewhere, the speed and
# stacking benchmarks on CUDA, then the paper-scale LeNet-300-100 IMP (15 rounds x 50,000
# iterations, ticket and both controls, 5 seeds), timed end to end (resumes if run again).
#   PARTS="tests speed stacked paper" OUT=dir bash benchmarks/gpu_checks.sh
# PARTS: any of those (default: all); a device call lasts at most 10 minutes, so run "paper" alone.
# Data: MNIST's four .gz files in data/MNIST/raw, or in .gpu-data/MNIST/raw, copied to data/ first
# (CIFAR-10 is too large to carry: the Conv-2 rows of benchmarks/stacked.py are skipped without it).
set -uo pipefail
OUT=${OUT:-build/gpu-checks}
mkdir -p "$OUT" data
[ -d .gpu-data ] && cp -r --update=none .gpu-data/. data/
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/device.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$OUT/device.txt"
PARTS=${PARTS:-tests speed stacked paper}
want() { [[ " $PARTS " == *" $1 "* ]]; }
status=0
if want tests; then
    python3 -m pytest -q -p no:cacheprovider -rA -k "cuda or gpu" \
        tests/test_masks.py tests/test_cli.py tests/test_imp.py tests/test_rewinding.py tests/test_stacked.py 2>&1 | tee "$OUT/tests.log" || status=1
fi
if want speed; then
    PYTHONPATH=. timeout "${SPEED_TIMEOUT:-300}" python3 benchmarks/speed.py --device cuda --out "$OUT/speed-cuda.json" 2>&1 \
        | tee "$OUT/speed.log" || status=1
fi
if want stacked; then
    PYTHONPATH=. timeout "${STACKED_TIMEOUT:-240}" python3 benchmarks/stacked.py --device cuda --out "$OUT/stacked-cuda.json" \
        2>&1 | tee "$OUT/stacked.log" || status=1
fi
if want paper; then
    PYTHONPATH=. timeout "${PAPER_TIMEOUT:-580}" python3 benchmarks/paper_lenet.py --device cuda --runs build/paper-lenet \
        --out "$OUT/paper-lenet-cuda.json" 2>&1 | tee "$OUT/paper-lenet.log" || status=1
fi
exit $status
