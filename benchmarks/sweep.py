"""The same sweep one job after another, and on a LocalCluster of 2 workers: wall time, and the cluster's start.

    .venv/bin/python benchmarks/sweep.py            # about 3.5 minutes on 2 CPU cores
    .venv/bin/python benchmarks/sweep.py --quick    # a smoke run

Six small ``lthkit imp`` jobs (LeNet-300-100 on MNIST, 2 rounds of 1,000 iterations with the
reinit control, seeds 0-5) run three ways, each into a fresh folder: one after another in this
process on 1 thread and on all threads (``lthkit.sweep.run_job``, no Dask), then with
``lthkit.sweep.run_sweep`` on a LocalCluster of 2 single-threaded workers (its wall time includes
starting the cluster, reported apart), and checks that every job's results on the cluster equal its
one-thread run's. Writes ``benchmarks/sweep-cpu.json``; the previous file's times are printed beside
the new ones as anchors.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from lthkit.sweep import expand, run_job, run_sweep

SETTINGS = {"model": ["lenet300"], "rounds": ["2"], "iterations": ["1000"], "eval-every": ["250"],
            "controls": ["reinit"], "device": ["cpu"]}


def one_after_another(jobs, folder: Path, threads: int) -> float:
    start = time.perf_counter()
    for job in jobs:
        assert run_job(job, folder, threads).ok, f"job {job.describe()} failed: see {folder / job.key / 'log.txt'}"
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="two tiny jobs")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "sweep-cpu.json")
    args = parser.parse_args()
    settings = {**SETTINGS, "iterations": ["60"], "rounds": ["1"]} if args.quick else SETTINGS
    jobs = expand(list(range(2 if args.quick else 6)), settings)
    threads = torch.get_num_threads()
    rows = {}
    with tempfile.TemporaryDirectory(prefix="lthkit-sweep-bench-") as scratch:
        scratch = Path(scratch)
        rows["one after another, 1 thread"] = {"seconds": one_after_another(jobs, scratch / "seq1", 1)}
        rows[f"one after another, {threads} threads"] = {"seconds": one_after_another(jobs, scratch / "seqn", threads)}
        report = run_sweep(jobs, scratch / "cluster", workers=2, progress=False)
        assert report.ok, report.summary()
        rows["LocalCluster, 2 workers"] = {"seconds": report.seconds, "cluster_start": report.cluster_seconds}
        for job in jobs:  # where a job ran does not change its numbers; its thread count does
            here, there = (json.loads((scratch / way / job.key / "run" / "results.json").read_text())["rounds"]
                           for way in ("seq1", "cluster"))
            assert here == there, f"job {job.describe()}: the cluster's results differ from the one-thread run's"
    anchors = json.loads(args.out.read_text())["rows"] if args.out.exists() and not args.quick else {}
    print(f"{len(jobs)} jobs ({' '.join(f'{k}={v[0]}' for k, v in settings.items())}), seeds 0-{len(jobs) - 1}; "
          f"{threads} CPU threads; seconds (the previous run's in brackets)")
    print(f"{'':34s} {'wall':>14s} {'per job':>10s} {'cluster start':>15s}")
    for name, row in rows.items():
        old = anchors.get(name, {})
        wall = f"{row['seconds']:.1f}" + (f" [{old['seconds']:.1f}]" if old else "")
        start = f"{row['cluster_start']:.1f}" + (f" [{old['cluster_start']:.1f}]" if old else "") \
            if "cluster_start" in row else "—"
        print(f"{name:34s} {wall:>14s} {row['seconds'] / len(jobs):10.1f} {start:>15s}")
    if not args.quick:
        args.out.write_text(json.dumps({"threads": threads, "jobs": len(jobs), "settings": settings,
                                        "torch": torch.__version__, "rows": rows}, indent=1) + "\n")
        print(f"written to {args.out}")


if __name__ == "__main__":
    main()
