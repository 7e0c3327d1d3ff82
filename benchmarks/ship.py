"""What a LeNet-300-100 ticket saves on a CPU, by sparsity and batch: bytes and milliseconds.

    .venv/bin/python benchmarks/ship.py            # about a minute and a half on 2 CPU cores
    .venv/bin/python benchmarks/ship.py --quick    # a smoke run

For each fraction of weights kept (magnitude-pruned layer by layer from a freshly
initialised network: the sparsity, not the values, sets the speed), prints the bytes of the dense, masked,
compact and LZMA-compressed forms (``lthkit.ship.sizes``) and the median latency of one forward
pass at batch 1 and 64 (``torch.utils.benchmark``, the best of three medians) of the dense network, the same network masked
(its zeros multiplied), ``torch.sparse`` CSR kernels (``with_sparse_kernels``) and onnxruntime.
Writes the table as JSON (``--out``, default ``benchmarks/ship-cpu.json``); the previous file's
numbers, when there is one, are printed beside the new ones as anchors.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from lthkit.masks import Mask, layer_rates, prune_by_magnitude
from lthkit.models import build_model
from lthkit.ship import latency, onnx_model, sizes, with_sparse_kernels

DENSITIES = (1.0, 0.5, 0.2, 0.1, 0.05, 0.02)
BATCHES = (1, 64)
REPEAT = 3  # the best of three medians: this machine's speed drifts between seconds


def ticket_like(density: float) -> tuple[torch.nn.Module, Mask]:
    model = build_model("lenet300", (1, 28, 28), seed=0)
    mask = prune_by_magnitude(model, Mask.ones_like(model), layer_rates(model, {"fc": 1 - density, "output": 1 - density}))
    mask.apply_(model)
    return model.eval(), mask


def measure(density: float, threads: int, min_run_time: float) -> dict:
    model, mask = ticket_like(density)
    row = {"density": density, "bytes": sizes(model, mask)}
    forms = {"dense": build_model("lenet300", (1, 28, 28), seed=0).eval(), "masked": model,
             "csr": with_sparse_kernels(model, mask),
             "onnxruntime": onnx_model(model, (1, 28, 28), threads=threads)}
    for batch in BATCHES:
        x = torch.randn(batch, 1, 28, 28, generator=torch.Generator().manual_seed(batch))
        row[f"batch {batch}"] = {name: min(latency(m, x, threads=threads, min_run_time=min_run_time).median
                                           for _ in range(REPEAT)) * 1e3 for name, m in forms.items()}
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="two densities, short timings")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "ship-cpu.json")
    args = parser.parse_args()
    densities = (1.0, 0.1) if args.quick else DENSITIES
    anchors = json.loads(args.out.read_text()) if args.out.exists() else None
    rows = [measure(d, args.threads, 0.05 if args.quick else 0.3) for d in densities]
    before = {r["density"]: r for r in (anchors or {}).get("rows", [])}
    print(f"LeNet-300-100 on {args.threads} CPU thread(s); latency in ms (the previous run's in brackets)")
    print(f"{'kept':>6} {'dense B':>10} {'compact B':>10} {'lzma B':>10}  "
          + "  ".join(f"{f'b{b} ' + name:>16}" for b in BATCHES for name in ("dense", "masked", "csr", "onnxruntime")))
    for row in rows:
        old = before.get(row["density"])
        cells = []
        for batch in BATCHES:
            for name, ms in row[f"batch {batch}"].items():
                anchor = f" [{old[f'batch {batch}'][name]:.3f}]" if old else ""
                cells.append(f"{ms:.3f}{anchor}".rjust(16))
        b = row["bytes"]
        print(f"{row['density']:6.0%} {b['dense']:10,} {b['compact']:10,} {b['dense_lzma']:10,}  " + "  ".join(cells))
    if not args.quick:
        args.out.write_text(json.dumps({"threads": args.threads, "torch": torch.__version__, "rows": rows}, indent=1) + "\n")
        print(f"written to {args.out}")


if __name__ == "__main__":
    main()
