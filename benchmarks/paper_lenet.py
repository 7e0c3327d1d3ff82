"""Frankle & Carbin's LeNet-300-100 experiment at the paper's scale, timed end to end.

    python benchmarks/paper_lenet.py --device cuda       # the paper's run: goal under 10 minutes on one H100
    python benchmarks/paper_lenet.py --device cpu --quick   # a smoke run: 2 rounds of 300 iterations
    python benchmarks/paper_lenet.py --device cuda --engine stacked --checkpoint-every-s 60   # what gpu_checks.sh runs

IMP on MNIST with the paper's settings (Adam 1.2e-3, batch 60, 50,000 iterations per training,
20% of the hidden layers' weights and 10% of the output layer's pruned per round, rewinding to
initialisation), 15 rounds, the ticket and both controls (reinit, random), for seeds 0-4: the
data of the paper's Figures 1 and 4 (five trials). The five runs go through their rounds in
step, all fifteen networks of a round trained together (``lthkit.imp.run_imp_seeds``; on CUDA
stacked into one step captured as a CUDA graph). The runs are checkpointed in ``--runs`` and
resume when started again (the time then counts only this start's share).

Prints, per round, the mean over seeds of each arm's test accuracy at early stop and its
early-stop iteration (``lthkit.sweep_results.summarize``: with 95% intervals in the JSON), beside the committed CPU reference runs (notebooks/reference,
mnist-lenet300: 3 seeds of 5 epochs per round), and writes ``benchmarks/paper-lenet-<device>.json``
with the wall time, the device and every number printed. While it runs, the JSON is rewritten after
each trained network with ``"partial": true``, the arms done so far and the rounds' training times,
so a run stopped by a device call's time limit still says how fast it went (a round of the
paper's run is a fifteenth of it); ``seconds_before`` adds the earlier starts of a resumed run.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from lthkit.config import make_config
from lthkit.course import reference_runs
from lthkit.data import load_dataset
from lthkit.imp import CHECKPOINT_EVERY_S, run_imp_seeds
from lthkit.results import Results, print_arm
from lthkit.sweep_results import rows_of, summarize

ARMS = ("ticket", "reinit", "random")


def summary(runs: list[Results], setting: str) -> dict[tuple[int, str], dict]:
    """Per (round, arm): seeds, weights remaining, mean and 95% half-width of each measure over the
    seeds (``lthkit.sweep_results.summarize``, the table ``lthkit sweep collect`` prints)."""
    return {(s["round"], s["arm"]): s for s in summarize([row for run in runs for row in rows_of(run, setting)])}


def cell(found: dict, key: tuple[int, str]) -> str:
    got = found.get(key)
    return f"{got['early_stop_test_accuracy']:7.2%} {got['early_stop_iteration']:7.0f}" if got else f"{'-':>7s} {'-':>7s}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="auto", help="auto, cuda, cpu or mps (default: auto)")
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 (default: 5, the paper's trials)")
    parser.add_argument("--runs", type=Path, default=Path("build/paper-lenet"), help="the runs' folders (resumable)")
    parser.add_argument("--out", type=Path, help="JSON to write (default: benchmarks/paper-lenet-<device>.json)")
    parser.add_argument("--quick", action="store_true", help="2 rounds of 300 iterations on 3,000 images")
    parser.add_argument("--tiny", action="store_true",
                        help="1 round of 20 iterations on 300 images, evaluated on 500 (a dry run)")
    parser.add_argument("--engine", default="auto", help="auto, loop or stacked (default: auto)")
    parser.add_argument("--checkpoint-every-s", type=float, default=CHECKPOINT_EVERY_S,
                        help="seconds between checkpoints (a killed run resumes from the last)")
    args = parser.parse_args()
    quick = dict(rounds=2, iterations=300, subset=3000, eval_every=100) if args.quick else {}
    quick = {"rounds": 1, "iterations": 20, "subset": 300, "eval_every": 10} if args.tiny else quick
    config = make_config(**{"model": "lenet300", "rounds": 15, "device": args.device, **quick})
    device = torch.device(config.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    out = args.out or Path(__file__).parent / f"paper-lenet-{device.type}.json"
    write = not (args.quick or args.tiny) or args.out
    folder = args.runs / config.device
    clock = folder / "seconds.json"  # this benchmark's time in earlier starts of the same runs
    before = json.loads(clock.read_text())["seconds"] if clock.exists() else 0.0
    start, done = time.perf_counter(), []

    def on_arm(seed, r, arm, result, arm_seconds):
        if arm == "ticket":
            print_arm(r, arm, result, arm_seconds, seed=seed)
        done.append({"seed": seed, "round": r, "arm": arm, "early_stop_test_accuracy": result.early_stop_test_accuracy,
                     "early_stop_iteration": result.early_stop_iteration})
        elapsed = time.perf_counter() - start
        folder.mkdir(parents=True, exist_ok=True)
        clock.write_text(json.dumps({"seconds": before + elapsed}))
        if write:
            save(out, {"partial": True, "device": name, "torch": torch.__version__, "engine": args.engine,
                       "seconds": round(elapsed, 1), "seconds_before": round(before, 1), "seeds": args.seeds,
                       "config": config.to_dict(), "arms_done": done, "timings_seed0": read(folder / "seed0")})

    data = load_dataset("mnist", subset=300, device=device).with_eval_size(500) if args.tiny else None
    runs = run_imp_seeds(config, list(range(args.seeds)), folder, data=data, resume=True, progress=False,
                         on_arm=on_arm, engine=args.engine, checkpoint_every_s=args.checkpoint_every_s)
    seconds = time.perf_counter() - start
    timings = json.loads((folder / "seed0" / "timings.json").read_text())
    ours, theirs = summary(runs, "this run"), summary(reference_runs("mnist-lenet300"), "reference")
    print(f"\nLeNet-300-100 IMP, {config.rounds} rounds x {config.training.iterations} iterations, "
          f"{', '.join(ARMS)}, {args.seeds} seeds: {seconds / 60:.1f} minutes on {name}"
          + (f" (and {before / 60:.1f} in earlier starts)" if before else ""))
    print("round 1: " + timings["training"].get("round_01", timings["training"]["round_00"]))
    print("mean over seeds: test accuracy at early stop and early-stop iteration; reference: the committed CPU "
          "runs (3 seeds, 5 epochs per round)")
    print(f"{'round':>5s} {'weights':>8s}  " + "  ".join(f"{arm + ' acc':>7s} {'it':>7s}" for arm in ARMS)
          + f"   {'reference ticket':>16s}")
    for r in sorted({r for r, _ in ours}):
        weights = ours[(r, "ticket")]["weights_remaining"]
        print(f"{r:5d} {weights:8.2%}  " + "  ".join(cell(ours, (r, arm)) for arm in ARMS)
              + f"   {cell(theirs, (r, 'ticket'))}")
    if write:
        save(out, {"device": name, "torch": torch.__version__, "engine": args.engine, "timings_seed0": timings,
                   "seconds": round(seconds, 1), "seconds_before": round(before, 1), "seeds": args.seeds,
                   "config": config.to_dict(), "training": timings["training"], "rounds": list(ours.values()),
                   "reference": list(theirs.values())})
        print(f"written: {out}")


def read(run: Path) -> dict | None:
    """A run folder's timings.json: each arm's share of each round's time, and how the round trained."""
    return json.loads((run / "timings.json").read_text()) if (run / "timings.json").exists() else None


def save(out: Path, data: dict) -> None:
    """Atomically: a run killed while writing leaves the previous file."""
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    tmp.replace(out)


if __name__ == "__main__":
    main()
