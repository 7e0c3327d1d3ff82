#!/usr/bin/env bash
# Makes the reference runs that notebooks 03-07 draw beside a learner's own run, as sweeps on Dask
# (lthkit sweep; a LocalCluster of one worker per core, or --scheduler tcp://HOST:8786 in SCHEDULER).
#   make_reference.sh mnist     LeNet-300-100 on MNIST: about 12 minutes per seed on a 2-core laptop CPU
#   make_reference.sh cifar10   Conv-2 on CIFAR-10: about 25 minutes per seed on the same CPU
#   make_reference.sh resnet20  ResNet-20 on CIFAR-10, rewinding to iteration 30 and to 0: about 5 minutes per seed
#   make_reference.sh at-init   LeNet-300-100 on MNIST, IMP against masks found at initialisation (notebook 07's
#                               classroom budget): about 6 minutes per seed
# With no argument it makes all four. A GPU is much faster (SET="--set device=cuda"). Every sweep skips
# the jobs it finished and resumes the others, so the script can be killed and started again.
# SWEEP_OPTIONS passes options to each sweep: the committed runs were made on 2 threads, which
# SWEEP_OPTIONS="--workers 1 --threads-per-job 2" reproduces bit for bit on the same machine (by default
# a job computes on 1 thread, one per core, and its last digits differ).
# Each sweep's folder (runs/reference-*) also gets sweep.csv, summary.csv and sweep.png from collect.
set -euo pipefail
cd "$(dirname "$0")/../.."
which="${1:-all}"
lthkit=.venv/bin/lthkit
# (${a[@]+"${a[@]}"}: an empty array under set -u in bash 3.2, macOS's own)
scheduler=(${SCHEDULER:+--scheduler "$SCHEDULER"})
extra=(${SET:-})
options=(${SWEEP_OPTIONS:-})
sweep() {
  "$lthkit" sweep ${scheduler[@]+"${scheduler[@]}"} ${options[@]+"${options[@]}"} ${extra[@]+"${extra[@]}"} --quiet "$@"
}
if [ "$which" = mnist ] || [ "$which" = all ]; then
  sweep --out runs/reference-mnist --seeds 0-2 --set dataset=mnist --set model=lenet300 --set rounds=20 \
    --set epochs=5 --set controls='reinit,random'
  "$lthkit" sweep collect runs/reference-mnist --reference mnist-lenet300
fi
if [ "$which" = cifar10 ] || [ "$which" = all ]; then
  sweep --out runs/reference-cifar10-conv2 --seeds 0-2 --set dataset=cifar10 --set model=conv2 --set rounds=6 \
    --set iterations=500 --set eval-images=1000 --set controls='reinit,random'
  "$lthkit" sweep collect runs/reference-cifar10-conv2 --reference cifar10-conv2
fi
if [ "$which" = resnet20 ] || [ "$which" = all ]; then
  # the classroom budget of notebook 06 with other seeds than its own (0): rewinding to 30 beside reinit, and to 0
  common=(--seeds 1-2 --set dataset=cifar10 --set model=resnet20 --set rounds=1 --set iterations=300
          --set eval-images=1000)
  sweep --out runs/reference-cifar10-resnet20 "${common[@]}" --set rewind-iteration=30 --set controls=reinit
  sweep --out runs/reference-cifar10-resnet20 "${common[@]}" --set rewind-iteration=0 --set controls=''
  "$lthkit" sweep collect runs/reference-cifar10-resnet20 --reference 'cifar10-resnet20-k{rewind_iteration}'
fi
if [ "$which" = at-init ] || [ "$which" = all ]; then
  # notebook 07's classroom budget: 2 epochs, 8 rounds of 40% (fully-connected) and 20% (output) for IMP;
  # each score at initialisation pruning 40% globally a round
  common=(--seeds 0-2 --set dataset=mnist --set model=lenet300 --set rounds=8 --set iterations=1834
          --set controls=random)
  sweep --out runs/reference-at-init "${common[@]}" --set method=imp --set prune-rate='fc=0.4,output=0.2'
  sweep --out runs/reference-at-init "${common[@]}" --set method=magnitude,snip,grasp,synflow --set global=true \
    --set prune-rate=0.4
  "$lthkit" sweep collect runs/reference-at-init --reference 'mnist-at-init-{method}'
fi
