"""Network-steps per second: many networks stacked into one step, against the plain loop.

    .venv/bin/python benchmarks/stacked.py                 # about 3 minutes on 2 CPU cores
    .venv/bin/python benchmarks/stacked.py --device cuda   # on a GPU (the stacked step as a CUDA graph)
    .venv/bin/python benchmarks/stacked.py --quick         # a smoke run
    .venv/bin/python benchmarks/stacked.py --models conv2 --out f.json   # some rows, merged into f.json

For 1, 3, 15 and 45 LeNet-300-100s on MNIST and 3 and 15 Conv-2s on CIFAR-10 (the paper's
batch of 60 and Adam, each network with a mask of 80% of its weights and a seed of its own, so
a batch of its own), it times the training step of ``lthkit.train.LoopNetworks`` (the networks
one after another) and of ``lthkit.stacked.StackedNetworks`` (one stacked computation; on CUDA
replayed as a CUDA graph) and prints the networks trained per second, best of three timings
after a warm-up (the graph's capture included there). ``lthkit.stacked.choose_engine`` follows
these figures. Writes ``benchmarks/stacked-<device>.json``; the previous file's figures are
printed beside the new ones as anchors. The JSON is written after each row, so a run cut short keeps
what it measured; rows of the same device that this run does not measure are kept from the
previous file (a GPU check measures LeNet-300-100 before CIFAR-10 has arrived, Conv-2 after).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from lthkit.data import DataMissingError, load_dataset
from lthkit.masks import Mask, prune_by_magnitude
from lthkit.models import build_model, prunable_layers
from lthkit.stacked import StackedNetworks
from lthkit.train import BatchOrder, LoopNetworks, TrainConfig, make_optimizer, resolve_device

CASES = [("lenet300", "mnist", n) for n in (1, 3, 15, 45)] + [("conv2", "cifar10", n) for n in (3, 15)]


def networks(model: str, shape, n: int):
    models = [build_model(model, shape, seed=s) for s in range(n)]
    masks = [prune_by_magnitude(m, Mask.ones_like(m), {k: 0.8 for k in prunable_layers(m)}) for m in models]
    return models, masks


def rate(nets, orders, steps: int, device: torch.device, warmup: int = 5) -> float:
    """Network-steps per second of ``nets``: best of three timings of ``steps`` steps, after a warm-up."""
    def run(first: int, count: int) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for it in range(first, first + count):
            batches = {s: order(it) for s, order in orders.items()}
            nets.step(batches, None, it)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    run(0, warmup)
    best = min(run(warmup + k * steps, steps) for k in range(3))
    return len(nets) * steps / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default: auto)")
    parser.add_argument("--quick", action="store_true", help="LeNet-300-100 only, few steps")
    parser.add_argument("--out", type=Path, help="JSON to write (default: benchmarks/stacked-<device>.json)")
    parser.add_argument("--models", default="lenet300,conv2", help="the networks to measure (default: both)")
    parser.add_argument("--max-networks", type=int, default=45, help="leave out the rows with more networks")
    parser.add_argument("--steps", type=int, help="steps per timing (default: by device and network)")
    parser.add_argument("--warmup", type=int, default=5, help="steps before the timings (default: 5)")
    args = parser.parse_args()
    device = resolve_device(args.device)
    out = args.out or Path(__file__).parent / f"stacked-{device.type}.json"
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    previous = json.loads(out.read_text()) if out.exists() else {}
    anchors = previous.get("rows", {}) if not args.quick else {}
    kept = {k: v for k, v in anchors.items() if previous.get("name") == name}  # rows this run does not measure
    cases = [c for c in CASES if c[0] in args.models.split(",") and c[2] <= args.max_networks]
    data = {}
    for dataset in dict.fromkeys(d for _, d, _ in cases if not (args.quick and d == "cifar10")):
        try:
            data[dataset] = load_dataset(dataset, device=device)
        except DataMissingError as err:
            print(f"{dataset} is not here ({err}): its rows are skipped")
    config = TrainConfig(iterations=10**6)
    rows = {}
    for model, dataset, n in cases:
        if dataset not in data:
            continue
        splits = data[dataset]
        orders = {s: BatchOrder(len(splits.train), config.batch_size, s, device) for s in range(n)}
        cpu_conv = model == "conv2" and device.type == "cpu"
        steps = args.steps or (2 if args.quick else (3 if cpu_conv else max(10, 600 // n) if device.type == "cpu" else 200))
        row = {}
        for engine in ("loop", "stacked"):
            models, masks = networks(model, splits.info.input_shape, n)
            if engine == "loop":
                nets = LoopNetworks(models, masks, splits, config, list(range(n)))
            else:
                nets = StackedNetworks(models, masks, splits.train.x, splits.train.y, list(range(n)),
                                       lambda p, capturable: make_optimizer(p, config, capturable=capturable),
                                       graph=device.type == "cuda")
            row[engine] = rate(nets, orders, steps, device, args.warmup)
            if engine == "stacked" and device.type == "cuda":
                row["graph"] = nets.graph  # False: the capture failed and the step ran eagerly (a warning says why)
            print(f"  {model} x{n} {engine}: {row[engine]:.0f} network-steps/s", flush=True)
        rows[f"{model} x{n}"] = row
        if not args.quick or args.out:
            write(out, device, name, {**kept, **rows})
    print(f"\nnetwork-steps per second on {device.type} ({name}, {torch.get_num_threads()} CPU threads, "
          f"torch {torch.__version__}); the previous run's in brackets")
    print(f"{'networks':16s} {'loop':>16s} {'stacked':>16s} {'stacked/loop':>13s}")
    for key, row in rows.items():
        old = anchors.get(key, {})
        cells = [f"{row[e]:7.0f} ({old[e]:5.0f})" if e in old else f"{row[e]:7.0f}        " for e in ("loop", "stacked")]
        print(f"{key:16s} {cells[0]:>16s} {cells[1]:>16s} {row['stacked'] / row['loop']:12.2f}x")
    if not args.quick or args.out:
        print(f"written: {out}")


def write(out: Path, device: torch.device, name: str, rows: dict) -> None:
    """The figures so far, atomically (a run killed while writing leaves the previous file)."""
    order = [f"{m} x{n}" for m, _, n in CASES]
    rows = dict(sorted(rows.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)))
    text = json.dumps({"device": device.type, "name": name, "threads": torch.get_num_threads(),
                       "torch": torch.__version__, "rows": rows}, indent=1) + "\n"
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(text)
    tmp.replace(out)


if __name__ == "__main__":
    main()
