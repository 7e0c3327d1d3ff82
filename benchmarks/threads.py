"""Two lthkit processes side by side on one machine: do their CPU threads fight?

PyTorch's OpenMP threads spin for a while when they wait for work (GNU OpenMP, PyTorch's runtime on
Linux: about 300,000 turns). Alone that saves a wake-up; two processes each with a thread per core spin
against each other's work, and a LeNet round ran 10-50 times slower than alone (issue 28). A shorter spin
(``GOMP_SPINCOUNT``) or OpenMP's passive wait policy stops the fight but slows a process alone: small
layers wait for work thousands of times a second. One thread per process stops it too but slows a conv
net alone. No policy measured here is both as fast alone and within 2.2x side by side for LeNet-300-100
and Conv-2 alike, so lthkit leaves OpenMP's default, and whatever starts several processes at once gives
each one thread: ``make test`` (its pytest-xdist workers), the sweeps (``--threads-per-job``).

This times training steps in fresh processes, alone and two at once, under each policy: LeNet-300-100
(small layers, the worst case for waiting) under all of them, Conv-2 under three. It writes
benchmarks/threads-cpu.json. The goal: two side by side each within 2.2x of one alone under GNU OpenMP's
default, and one alone as fast as there. Time it on a quiet machine: the load average at the end is
recorded.

    .venv/bin/python benchmarks/threads.py [--repeats 3]
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
name, steps_timed = sys.argv[1], int(sys.argv[2])
shape = (1, 28, 28) if name == "lenet300" else (3, 32, 32)
model = build_model(name, shape)
opt = make_optimizer(model.parameters(), TrainConfig(iterations=1))
x, y = torch.randn(60, *shape), torch.randint(0, 10, (60,))
def steps(n):
    for _ in range(n):
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
steps(5)
start = time.perf_counter()
steps(steps_timed)
print(time.perf_counter() - start, torch.get_num_threads())
"""

GNU = "GNU OpenMP's default (spin 300,000)"
SHORT = "spin 1,000"
POLICIES = {SHORT: {"GOMP_SPINCOUNT": "1000"},
            GNU: {},
            "passive wait": {"OMP_WAIT_POLICY": "PASSIVE"},
            "spin 100": {"GOMP_SPINCOUNT": "100"},
            "spin 10,000": {"GOMP_SPINCOUNT": "10000"},
            "spin 100,000": {"GOMP_SPINCOUNT": "100000"},
            "one thread each": {"OMP_NUM_THREADS": "1"}}
WORKLOADS = {"lenet300": (400, list(POLICIES)), "conv2": (20, [SHORT, GNU, "one thread each"])}


def run(model: str, policy: str, steps: int, together: int) -> list[float]:
    """Seconds of ``steps`` training steps of ``model`` in each of ``together`` processes started at once."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "GOMP_SPINCOUNT")} | POLICIES[policy]
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, model, str(steps)], env=env, stdout=subprocess.PIPE,
                              text=True, cwd=Path(__file__).resolve().parents[1]) for _ in range(together)]
    return [float(p.communicate()[0].split()[0]) for p in procs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("threads-cpu.json"))
    args = parser.parse_args()
    found = {}
    for model, (steps, policies) in WORKLOADS.items():
        found[model] = {"steps": steps}
        for policy in policies:
            alone = min(run(model, policy, steps, 1)[0] for _ in range(args.repeats))
            pair = min(max(run(model, policy, steps, 2)) for _ in range(args.repeats))
            found[model][policy] = {"alone_s": round(alone, 3), "two_side_by_side_s": round(pair, 3)}
        gnu_alone = found[model][GNU]["alone_s"]
        for policy in policies:
            row = found[model][policy]
            row["side_by_side_over_alone"] = round(row["two_side_by_side_s"] / row["alone_s"], 2)
            row["alone_over_gnu_alone"] = round(row["alone_s"] / gnu_alone, 2)
            row["side_by_side_over_gnu_alone"] = round(row["two_side_by_side_s"] / gnu_alone, 2)
            print(f"{model:8s} {policy:36s} alone {row['alone_s']:6.2f} s ({row['alone_over_gnu_alone']:.2f}x GNU's), "
                  f"two side by side {row['two_side_by_side_s']:6.2f} s ({row['side_by_side_over_gnu_alone']:.2f}x "
                  f"GNU's alone)", flush=True)
    report = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} "
                         f"at the end", "repeats (best of)": args.repeats,
              "goal": "two side by side each within 2.2x of one alone under GNU OpenMP's default; alone as fast",
              "results": found, "measured": time.strftime("%Y-%m-%d")}
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
