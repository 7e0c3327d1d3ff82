"""The README's result tables, printed as Markdown from saved runs (never typed by hand).

    .venv/bin/python tools/markdown_tables.py run runs/mnist-lenet300-15x3/results.json
    .venv/bin/python tools/markdown_tables.py reference notebooks/reference/mnist-lenet300-seed*.json

``run``: one row per chosen round, test accuracy at the early-stopping iteration @ that
iteration, for the ticket and each control. ``reference``: the mean over the runs given,
with the lowest and highest, and the mean early-stopping iteration.
"""

from __future__ import annotations

import argparse
import sys
from statistics import mean

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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=("run", "reference"))
    parser.add_argument("files", nargs="+")
    parser.add_argument("--rounds", default=None, help="comma-separated rounds (default: every fifth)")
    args = parser.parse_args(argv)
    runs = [Results.load(f) for f in args.files]
    last = min(len(run.rounds) for run in runs) - 1
    rounds = [int(r) for r in args.rounds.split(",")] if args.rounds else list(range(0, last + 1, 5))
    if args.kind == "run" and len(runs) != 1:
        parser.error("'run' takes one results.json")
    lines = run_table(runs[0], rounds) if args.kind == "run" else reference_table(runs, rounds)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
