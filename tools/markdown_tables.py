"""The README's result tables, printed as Markdown from saved runs (never typed by hand).

    .venv/bin/python tools/markdown_tables.py run runs/mnist-lenet300-15x3/results.json
    .venv/bin/python tools/markdown_tables.py reference notebooks/reference/mnist-lenet300-seed*.json
    .venv/bin/python tools/markdown_tables.py speed benchmarks/speed-cpu.json
    .venv/bin/python tools/markdown_tables.py at-init notebooks/reference/mnist-at-init-*-seed*.json
    .venv/bin/python tools/markdown_tables.py stacked benchmarks/stacked-cpu.json

``run``: one row per chosen round, test accuracy at the early-stopping iteration @ that
iteration, for the ticket and each control. ``reference``: the mean over the runs given,
with the lowest and highest, and the mean early-stopping iteration. ``speed``: the table and
the step profile that ``benchmarks/speed.py`` wrote, with the issue's targets. ``at-init``: IMP
against masks found at initialisation, one column per method (each run's ``method``) and one
for IMP's random control, each the mean over the seeds given with the lowest and highest.
``stacked``: network-steps per second of the plain loop and of stacked training, from
``benchmarks/stacked.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
from statistics import mean

from lthkit.config import METHODS
from lthkit.results import Results

ARMS = ("ticket", "reinit", "random")


def run_table(results: Results, rounds: list[int]) -> list[str]:
    lines = ["| round | weights | ticket | reinit | random |", "| ---: | ---: | ---: | ---: | ---: |"]
    for r in rounds:
        row = results.rounds[r]
        cells = [f"{row.arms[a].early_stop_test_accuracy:.2%} @ {row.arms[a].early_stop_iteration}" if a in row.arms
                 else "–" for a in ARMS]
        if r == 0:
            cells[0] += " (dense)"
        lines.append(f"| {r} | {row.weights_remaining:.1%} | " + " | ".join(cells) + " |")
    return lines


def reference_table(runs: list[Results], rounds: list[int]) -> list[str]:
    lines = ["| round | weights | ticket | reinit | random |", "| ---: | ---: | ---: | ---: | ---: |"]
    for r in rounds:
        cells = []
        for arm in ARMS:
            results = [run.rounds[r].arms[arm] for run in runs if arm in run.rounds[r].arms]
            if not results:
                cells.append("–")
                continue
            accs = [a.early_stop_test_accuracy for a in results]
            its = mean(a.early_stop_iteration for a in results)
            cells.append(f"{mean(accs):.2%} ({100 * min(accs):.2f}–{100 * max(accs):.2f}) @ {its:.0f}")
        lines.append(f"| {r} | {runs[0].rounds[r].weights_remaining:.1%} | " + " | ".join(cells) + " |")
    return lines


def at_init_table(runs: list[Results], rounds: list[int]) -> list[str]:
    by_method: dict[str, list[Results]] = {}
    for run in runs:
        by_method.setdefault(run.config.get("method", "imp"), []).append(run)
    order = {m: i for i, m in enumerate(METHODS)}
    columns = [(m, "ticket") for m in sorted(by_method, key=lambda m: order.get(m, len(order)))]
    columns += [("imp", "random")] if "imp" in by_method else []
    names = [f"{m} ticket" if arm == "ticket" else "random pruning" for m, arm in columns]
    lines = ["| round | weights | " + " | ".join(names) + " |", "| ---: | ---: |" + " ---: |" * len(columns)]
    for r in rounds:
        cells = []
        for method, arm in columns:
            accs = [run.rounds[r].arms[arm].early_stop_test_accuracy for run in by_method[method]
                    if r < len(run.rounds) and arm in run.rounds[r].arms]
            cells.append(f"{mean(accs):.2%} ({100 * min(accs):.2f}–{100 * max(accs):.2f})" if accs else "–")
        weights = by_method.get("imp", next(iter(by_method.values())))[0].rounds[r].weights_remaining
        lines.append(f"| {r} | {weights:.1%} | " + " | ".join(cells) + " |")
    return lines


TARGETS = {  # row -> (lthkit / bound at most, hand-written / lthkit at least)
    "LeNet-300-100 epoch (s)": (1.5, 5.0),
    "Conv-2 epoch, CIFAR-10 shape (s)": (1.2, None),
    "IMP round 1: ticket + 2 controls vs ticket (s)": (2.5, None),
}


def speed_table(bench: dict) -> list[str]:
    def num(v, digits=2):
        return "–" if v is None else f"{v:.{digits}f}"

    lines = ["| measurement | lthkit | hand-written loop | bound | hand-written / lthkit | lthkit / bound | target |",
             "| --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for row in bench["rows"]:
        what = row["what"]
        target = TARGETS.get(what)
        goal = []
        if target and target[0]:
            met = row["ratio_to_bound"] <= target[0]
            against = "one arm" if what.startswith("IMP round") else "bound"
            goal.append(f"≤ {target[0]}x {against} {'met' if met else '**not met**'}")
        if target and target[1]:
            met = row["speedup_vs_hand_written"] >= target[1]
            goal.append(f"≥ {target[1]:.0f}x hand-written {'met' if met else '**not met**'}")
        if what.startswith("MNIST load"):
            lthkit = f"{row['first']:.2f} / {row['lthkit']:.2f}"
            goal.append(f"cached < 0.5 s {'met' if row['lthkit'] < 0.5 else '**not met**'}")
        elif what.startswith("peak memory"):
            lthkit = f"{row['lthkit']:.0f}"
            goal.append(f"< 1 GB {'met' if row['lthkit'] < 1024 else '**not met**'}")
        else:
            lthkit = num(row["lthkit"])
        lines.append(f"| {what} | {lthkit} | {num(row['hand-written'])} | {num(row['bound'])} | "
                     f"{num(row['speedup_vs_hand_written'])}{'x' if row['speedup_vs_hand_written'] else ''} | "
                     f"{num(row['ratio_to_bound'])}{'x' if row['ratio_to_bound'] else ''} | {'; '.join(goal)} |")
    profiles = bench.get("step_ms", {})
    if profiles:
        names = list(profiles)
        lines += ["", "| ms per training step (profiled) | " + " | ".join(names) + " |",
                  "| --- | " + " | ".join("---:" for _ in names) + " |"]
        for part in profiles[names[0]]:
            lines.append(f"| {part} | " + " | ".join(f"{profiles[n][part]:.2f}" for n in names) + " |")
    return lines


def stacked_table(bench: dict) -> list[str]:
    """``benchmarks/stacked.py``'s JSON: network-steps per second, loop against stacked."""
    lines = ["| networks | loop (network-steps/s) | stacked (network-steps/s) | stacked / loop |",
             "| --- | ---: | ---: | ---: |"]
    for key, row in bench["rows"].items():
        model, n = key.split(" x")
        name = {"lenet300": "LeNet-300-100", "conv2": "Conv-2"}.get(model, model)
        lines.append(f"| {n} {name} | {row['loop']:.0f} | {row['stacked']:.0f} | {row['stacked'] / row['loop']:.2f}x |")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=("run", "reference", "speed", "at-init", "stacked"))
    parser.add_argument("files", nargs="+")
    parser.add_argument("--rounds", default=None, help="comma-separated rounds (default: every fifth)")
    args = parser.parse_args(argv)
    if args.kind in ("speed", "stacked"):
        table = speed_table if args.kind == "speed" else stacked_table
        print("\n".join(table(json.loads(open(args.files[0]).read()))))
        return 0
    runs = [Results.load(f) for f in args.files]
    last = min(len(run.rounds) for run in runs) - 1
    rounds = [int(r) for r in args.rounds.split(",")] if args.rounds else list(range(0, last + 1, 5))
    if args.kind == "run" and len(runs) != 1:
        parser.error("'run' takes one results.json")
    table = {"run": lambda: run_table(runs[0], rounds), "reference": lambda: reference_table(runs, rounds),
             "at-init": lambda: at_init_table(runs, rounds)}
    lines = table[args.kind]()
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
