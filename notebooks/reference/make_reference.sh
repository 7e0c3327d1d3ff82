#!/usr/bin/env bash
# Makes the reference runs that notebooks 03-07 draw beside a learner's own run, as sweeps on Dask
# (lthkit sweep; a LocalCluster of one worker per core, or --scheduler tcp://HOST:8786 in SCHEDULER).
#   make_reference.sh mnist     LeNet-300-100 on MNIST: about 12 minutes per seed on a 2-core laptop CPU
#   make_reference.sh cifar10   Conv-2 on CIFAR-10: about 25 minutes per seed on the same CPU
#   make_reference.sh resnet20  ResNet-20 on CIFAR-10, rewinding to iteration 30 and to 0: about 5 minutes per seed
#   make_reference.sh at-init   LeNet-300-100 on MNIST, IMP against masks found at initialisation (notebook 07's
#                               classroom budget): about 6 minutes per seed
#   make_reference.sh transfer  LeNet-300-100 tickets moved between MNIST and Fashion-MNIST and between Adam and SGD
#                               (notebook 11's classroom budget and a fifth round; lthkit imp --ticket-from):
#                               40 to 60 minutes per seed on one thread while the course CPU was shared
#   make_reference.sh sparse    LeNet-300-100 on MNIST trained sparse from the start at the sparsity of at-init's IMP
#                               ticket of round 8 (notebook 12's classroom budget; lthkit train --sparse, one run at a
#                               time): about 2 minutes per seed
# With no argument it makes them all. A GPU is much faster (SET="--set device=cuda"). Every sweep skips
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
if [ "$which" = transfer ] || [ "$which" = all ]; then
  # notebook 11's classroom budget and a fifth round: LeNet-300-100, 2 epochs, 5 rounds of 40% (fully-connected) and
  # 20% (output);
  # IMP on MNIST with Adam (seed S), on Fashion-MNIST with Adam (seed S+10) and on MNIST with SGD, lr 0.02 (seed
  # S+20), then each ticket moved (lthkit imp --ticket-from) beside the target's own ticket and the random and
  # reinit controls, in the target's settings and seed
  seeds="${SEEDS:-0 1 2}"
  common=(--model lenet300 --iterations 1834 --eval-every 200 --rounds 5 --prune-rate 'fc=0.4,output=0.2' --quiet
          --resume ${THREADS:+--threads "$THREADS"})
  for seed in $seeds; do
    out=runs/reference-transfer/seed$seed
    adam=(--dataset mnist --seed "$seed")
    fashion=(--dataset fashion-mnist --seed "$((seed + 10))")
    sgd=(--dataset mnist --optimizer sgd --lr 0.02 --seed "$((seed + 20))")
    "$lthkit" imp "${adam[@]}" "${common[@]}" --controls '' --out "$out/mnist-adam"
    "$lthkit" imp "${fashion[@]}" "${common[@]}" --controls '' --out "$out/fashion-adam"
    "$lthkit" imp "${sgd[@]}" "${common[@]}" --controls '' --out "$out/mnist-sgd"
    move() {  # NAME SOURCE OWN TARGET-SETTINGS...
      local name=$1 source=$2 own=$3
      shift 3
      "$lthkit" imp "$@" "${common[@]}" --controls random,reinit --ticket-from "$out/$source" \
        --dense-from "$out/$own" --out "$out/$name"
      cp "$out/$name/results.json" "notebooks/reference/transfer-$name-seed$seed.json"
    }
    move mnist-to-fashion mnist-adam fashion-adam "${fashion[@]}"
    move fashion-to-mnist fashion-adam mnist-adam "${adam[@]}"
    move adam-to-sgd mnist-adam mnist-sgd "${sgd[@]}"
    move sgd-to-adam mnist-sgd mnist-adam "${adam[@]}"
  done
fi
if [ "$which" = sparse ] || [ "$which" = all ]; then
  # notebook 12's classroom budget: static, SET and RigL for 2 epochs at the 4,622 of 266,200 weights (1.74%) that IMP's
  # ticket keeps after 8 rounds of 40% (fully-connected) and 20% (output) (at-init's IMP, whose runs notebook 12 draws
  # beside these), and RigL for as many iterations as those 9 trainings of IMP together; ERK densities, RigL's schedule
  density=0.01736288504883546
  for seed in 0 1 2; do
    for method in static set rigl; do
      "$lthkit" train --sparse "$method" --density "$density" --dataset mnist --model lenet300 --iterations 1834 \
        --seed "$seed" --out "runs/reference-sparse/$method-seed$seed" --quiet --resume
      cp "runs/reference-sparse/$method-seed$seed/results.json" "notebooks/reference/mnist-sparse-$method-seed$seed.json"
    done
    "$lthkit" train --sparse rigl --density "$density" --dataset mnist --model lenet300 --iterations 16506 \
      --seed "$seed" --out "runs/reference-sparse/rigl-long-seed$seed" --quiet --resume
    cp "runs/reference-sparse/rigl-long-seed$seed/results.json" "notebooks/reference/mnist-sparse-rigl-long-seed$seed.json"
  done
fi
