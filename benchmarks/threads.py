"""Two lthkit processes side by side on one machine: do they fight over the CPU's cores?

PyTorch's OpenMP threads spin for a while when they wait for work (GNU OpenMP, PyTorch's runtime on
Linux: about 300,000 turns). Two processes, each with a thread per core, spin against each other's
work. lthkit's trainings therefore take turns on the cores (``lthkit.cores``): each holds as many
cores as it has threads, in slices of a second. This times lthkit's own training loop
(``lthkit.train``, random data in memory) in fresh processes, alone and two at once, under four
policies:

- taking turns: lthkit's default, OpenMP's default spin;
- no turns: ``LTHKIT_SHARE_CORES=0``, what lthkit did before;
- passive wait: no turns, ``OMP_WAIT_POLICY=PASSIVE`` (threads sleep at once);
- one thread each: ``OMP_NUM_THREADS=1`` (a process on one thread takes no turns; two run at once).

The two processes of a pair wait at a barrier after warming up, so their timed steps overlap from
the first, and neither exits before both have finished: a PyTorch process takes over a second to
exit here, which would burden the other's timed steps. A shared virtual machine's speed drifts by up to a factor of two over minutes, so the runs
go alone, two, alone, two, ..., alone; each pair is divided by the mean of the two alone runs around
it, and the median of these ratios is reported. The goal (issue 28): two side by side each within
2.2x of one alone, and one alone as fast as with no turns. Writes benchmarks/threads-cpu.json.

    .venv/bin/python benchmarks/threads.py [--repeats 4]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from lthkit.cores import SLICE_S

CHILD = """
import sys, time
import torch
from lthkit.catalogue import dataset_info
from lthkit.data import Split, Splits
from lthkit.models import build_model
from lthkit.train import TrainConfig, train
name, steps = sys.argv[1], int(sys.argv[2])
shape = (1, 28, 28) if name == "lenet300" else (3, 32, 32)
g = torch.Generator().manual_seed(0)
split = lambda n: Split(torch.randn(n, *shape, generator=g), torch.randint(0, 10, (n,), generator=g))
data = Splits(dataset_info("mnist" if name == "lenet300" else "cifar10"), split(6000), split(60), split(60))
model = build_model(name, shape, seed=0)
train(model, data, TrainConfig(iterations=3, eval_every=3), progress=False)
print("ready", flush=True)
sys.stdin.readline()
start = time.perf_counter()
train(model, data, TrainConfig(iterations=steps, eval_every=steps), progress=False)
print(time.perf_counter() - start, flush=True)
sys.stdin.readline()
"""

TURNS = "taking turns (lthkit's default)"
NO_TURNS = "no turns (LTHKIT_SHARE_CORES=0)"
POLICIES = {TURNS: {},
            NO_TURNS: {"LTHKIT_SHARE_CORES": "0"},
            "passive wait, no turns": {"LTHKIT_SHARE_CORES": "0", "OMP_WAIT_POLICY": "PASSIVE"},
            "one thread each": {"OMP_NUM_THREADS": "1"}}
WORKLOADS = {"lenet300": (500, list(POLICIES)), "conv2": (30, [TURNS, NO_TURNS, "one thread each"])}
GOAL = 2.2


def run(model: str, policy: str, steps: int, together: int) -> list[float]:
    """Seconds of ``steps`` training steps of ``model`` in each of ``together`` processes, started together
    once all have warmed up."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "GOMP_SPINCOUNT", "LTHKIT_SHARE_CORES")}
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, model, str(steps)], env=env | POLICIES[policy],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              cwd=Path(__file__).resolve().parents[1]) for _ in range(together)]
    for p in procs:
        if p.stdout.readline().strip() != "ready":
            raise RuntimeError(f"a {model} process under {policy!r} failed before its timed steps")
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    seconds = [float(p.stdout.readline()) for p in procs]
    for p in procs:
        p.communicate("exit\n")
    return seconds


def measure(model: str, policy: str, steps: int, repeats: int) -> dict:
    """One alone, then a pair and one alone ``repeats`` times: each pair against the mean of the two
    alone runs around it, so that the host's drift cancels to first order."""
    alone, pair = [run(model, policy, steps, 1)[0]], []
    for _ in range(repeats):
        pair.append(max(run(model, policy, steps, 2)))
        alone.append(run(model, policy, steps, 1)[0])
    ratios = [p / statistics.mean(alone[i:i + 2]) for i, p in enumerate(pair)]
    return {"alone_s": [round(a, 3) for a in alone], "two_side_by_side_s": [round(p, 3) for p in pair],
            "side_by_side_over_alone": [round(r, 2) for r in ratios],
            "median_side_by_side_over_alone": round(statistics.median(ratios), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("threads-cpu.json"))
    parser.add_argument("--policies", nargs="+", choices=list(POLICIES), default=list(POLICIES), metavar="POLICY",
                        help="time only these, keeping the others' rows from --out (after a change that moves only "
                             "these); default: all")
    args = parser.parse_args()
    kept = json.loads(args.out.read_text())["results"] if args.out.exists() and args.policies != list(POLICIES) else {}
    found = {}
    print(f"{'network':9s} {'policy':34s} {'alone, s':>9s} {'x turns alone':>14s} {'pair / alone':>13s}  "
          f"(goal: pair / alone under {GOAL})")
    for model, (steps, policies) in WORKLOADS.items():
        found[model] = {"steps": steps}
        for policy in policies:
            if policy in args.policies:
                found[model][policy] = measure(model, policy, steps, args.repeats) | {
                    "measured": time.strftime("%Y-%m-%d %H:%M"), "slice_s": SLICE_S}
            else:
                found[model][policy] = kept[model][policy]
        for policy in policies:
            row = found[model][policy]
            row["median_alone_over_turns_alone"] = round(
                statistics.median(row["alone_s"]) / statistics.median(found[model][TURNS]["alone_s"]), 2)
            print(f"{model:9s} {policy:34s} {statistics.median(row['alone_s']):9.2f} "
                  f"{row['median_alone_over_turns_alone']:14.2f} {row['median_side_by_side_over_alone']:13.2f}",
                  flush=True)
    report = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} "
                         f"at the end", "repeats": args.repeats,
              "goal": f"two side by side each within {GOAL}x of one alone (the median over repeats of a pair against "
                      f"the mean of the alone runs before and after it); one alone as fast as with no turns",
              "results": found}
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
