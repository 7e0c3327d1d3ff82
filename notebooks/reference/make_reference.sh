#!/usr/bin/env bash
# Makes the reference runs that notebooks 03-07 draw beside a learner's own run.
#   make_reference.sh mnist     LeNet-300-100 on MNIST: about 12 minutes per seed on a 2-core laptop CPU
#   make_reference.sh cifar10   Conv-2 on CIFAR-10: about 25 minutes per seed on the same CPU
#   make_reference.sh resnet20  ResNet-20 on CIFAR-10, rewinding to iteration 30 and to 0: about 5 minutes per seed
#   make_reference.sh at-init   LeNet-300-100 on MNIST, IMP against masks found at initialisation (notebook 07's
#                               classroom budget): about 6 minutes per seed
# With no argument it makes all four. A GPU is much faster (add --device cuda). Every run resumes
# where it stopped (--resume), so the script can be killed and started again.
set -euo pipefail
cd "$(dirname "$0")/../.."
which="${1:-all}"
if [ "$which" = mnist ] || [ "$which" = all ]; then
  for seed in 0 1 2; do
    .venv/bin/lthkit imp --dataset mnist --model lenet300 --rounds 20 --epochs 5 \
      --controls reinit,random --seed "$seed" --out "runs/reference-seed$seed" --quiet --resume
    cp "runs/reference-seed$seed/results.json" "notebooks/reference/mnist-lenet300-seed$seed.json"
  done
fi
if [ "$which" = cifar10 ] || [ "$which" = all ]; then
  for seed in 0 1 2; do
    .venv/bin/lthkit imp --dataset cifar10 --model conv2 --rounds 6 --iterations 500 --eval-images 1000 \
      --controls reinit,random --seed "$seed" --out "runs/reference-cifar10-conv2-seed$seed" --quiet --resume
    cp "runs/reference-cifar10-conv2-seed$seed/results.json" "notebooks/reference/cifar10-conv2-seed$seed.json"
  done
fi
if [ "$which" = resnet20 ] || [ "$which" = all ]; then
  for seed in 1 2; do  # the classroom budget of notebook 06 with other seeds than its own (0)
    common=(--dataset cifar10 --model resnet20 --rounds 1 --iterations 300 --eval-images 1000 --seed "$seed" --quiet --resume)
    .venv/bin/lthkit imp "${common[@]}" --rewind-iteration 30 --controls reinit \
      --out "runs/reference-cifar10-resnet20-k30-seed$seed"
    .venv/bin/lthkit imp "${common[@]}" --rewind-iteration 0 --controls '' \
      --dense-from "runs/reference-cifar10-resnet20-k30-seed$seed" --out "runs/reference-cifar10-resnet20-k0-seed$seed"
    for k in 30 0; do
      cp "runs/reference-cifar10-resnet20-k$k-seed$seed/results.json" "notebooks/reference/cifar10-resnet20-k$k-seed$seed.json"
    done
  done
fi
if [ "$which" = at-init ] || [ "$which" = all ]; then
  for seed in 0 1 2; do  # notebook 07's classroom budget: 2 epochs, 8 rounds of 40% (fully-connected) and 20% (output)
    common=(--dataset mnist --model lenet300 --rounds 8 --iterations 1834 --seed "$seed" --quiet --resume)
    .venv/bin/lthkit imp "${common[@]}" --prune-rate fc=0.4,output=0.2 --controls random \
      --out "runs/reference-at-init-imp-seed$seed"
    cp "runs/reference-at-init-imp-seed$seed/results.json" "notebooks/reference/mnist-at-init-imp-seed$seed.json"
    for method in magnitude snip grasp synflow; do
      .venv/bin/lthkit imp "${common[@]}" --method "$method" --global --prune-rate 0.4 --controls random \
        --dense-from "runs/reference-at-init-imp-seed$seed" --out "runs/reference-at-init-$method-seed$seed"
      cp "runs/reference-at-init-$method-seed$seed/results.json" "notebooks/reference/mnist-at-init-$method-seed$seed.json"
    done
  done
fi
