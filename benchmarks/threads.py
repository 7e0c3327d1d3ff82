"""Two lthkit processes side by side on one machine: do their CPU threads fight?

PyTorch's OpenMP threads spin for a while when they wait for work. Alone that saves a wake-up; two
processes each with a thread per core spin against each other's work, and a LeNet round ran 10-50 times
slower than alone (issue 28). OpenMP's passive wait policy (waiting threads sleep at once) stops the fight
but makes a process alone two to three times slower: small layers wait for work thousands of times a
second. One thread per process stops it too, and LeNet-300-100 trains as fast on one thread as on two.
So lthkit leaves OpenMP's default (fastest alone), and whatever starts several processes at once gives each
one thread: ``make test`` (its pytest-xdist workers), the sweeps (``--threads-per-job``).

This times LeNet-300-100 training steps in fresh processes, alone and two at once, under each policy, and
writes benchmarks/threads-cpu.json. The goal: two side by side within 2.2x of one alone, and alone as fast
as the default. Time it on a quiet machine: the load average at the end is recorded.

    OMP_NUM_THREADS= .venv/bin/python benchmarks/threads.py [--steps 400] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

CHILD = """
import sys, time
import torch
from lthkit.models import build_model
from lthkit.train import TrainConfig, make_optimizer
import torch.nn.functional as F
torch.manual_seed(0)
model = build_model("lenet300", (1, 28, 28))
opt = make_optimizer(model.parameters(), TrainConfig(iterations=1))
x, y = torch.randn(60, 1, 28, 28), torch.randint(0, 10, (60,))
def steps(n):
    for _ in range(n):
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
steps(20)
start = time.perf_counter()
steps(int(sys.argv[1]))
print(time.perf_counter() - start, torch.get_num_threads())
"""

POLICIES = {"openmp default, every core": {},
            "passive wait, every core": {"OMP_WAIT_POLICY": "PASSIVE"},
            "spin 100k, every core": {"GOMP_SPINCOUNT": "100000"},
            "spin 10k, every core": {"GOMP_SPINCOUNT": "10000"},
            "spin 1k, every core": {"GOMP_SPINCOUNT": "1000"},
            "one thread each": {"OMP_NUM_THREADS": "1"}}


def run(policy: str, steps: int, together: int) -> list[float]:
    """Seconds of ``steps`` steps in each of ``together`` processes started at once."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "GOMP_SPINCOUNT")} | POLICIES[policy]
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, str(steps)], env=env, stdout=subprocess.PIPE,
                              text=True, cwd=Path(__file__).resolve().parents[1]) for _ in range(together)]
    return [float(p.communicate()[0].split()[0]) for p in procs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("threads-cpu.json"))
    args = parser.parse_args()
    found = {}
    for policy in POLICIES:
        alone = min(run(policy, args.steps, 1)[0] for _ in range(args.repeats))
        pair = min(max(run(policy, args.steps, 2)) for _ in range(args.repeats))
        found[policy] = {"alone_s": round(alone, 3), "two_side_by_side_s": round(pair, 3),
                         "ratio": round(pair / alone, 2)}
        print(f"{policy:26s} alone {alone:.2f} s, two side by side {pair:.2f} s: {pair / alone:.2f}x", flush=True)
    report = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} "
                         f"at the end", "steps": args.steps, "repeats (best of)": args.repeats,
              "goal": "two side by side within 2.2x of one alone", "results": found,
              "measured": time.strftime("%Y-%m-%d")}
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
