"""Notebook 10's 2:4 semi-structured sparsity, measured on the GPU: one JSON, also where it cannot run.

    python benchmarks/semi_structured.py --out benchmarks/semi-structured-cuda.json

``lthkit.ship.semi_structured_speedup`` times a float16 linear layer pruned 2:4 against the same
layer dense (PyTorch's tutorial's shape, then LeNet-300-100's and Conv-2's widest layers at the
paper's batch and at a serving batch). It needs an NVIDIA GPU of compute capability 8.0 or newer;
elsewhere it raises saying why, and the JSON records that reason (``refused``) instead of a figure,
so a dry run on the CPU writes the same file.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from lthkit.ship import semi_structured_speedup

SHAPES = [  # in_features, out_features, batch
    (10240, 3072, 3072),  # the tutorial's, notebook 10's default
    (784, 300, 60), (784, 300, 4096),  # LeNet-300-100's first layer
    (16384, 256, 60), (16384, 256, 4096),  # Conv-2's first fully-connected layer
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--min-run-time", type=float, default=0.5, help="seconds per timing (default: 0.5)")
    args = parser.parse_args()
    found = {"torch": torch.__version__, "cuda": torch.cuda.is_available()}
    if torch.cuda.is_available():
        found |= {"name": torch.cuda.get_device_name(), "capability": list(torch.cuda.get_device_capability())}
    rows = []
    for in_features, out_features, batch in SHAPES:
        start = time.perf_counter()
        row = {"in_features": in_features, "out_features": out_features, "batch": batch}
        try:
            row["speedup"] = round(semi_structured_speedup(in_features, out_features, batch,
                                                           min_run_time=args.min_run_time), 3)
        except (RuntimeError, NotImplementedError) as err:  # NotImplementedError: a shape the kernels refuse
            row["refused"] = f"{type(err).__name__}: {err}"
        row["seconds"] = round(time.perf_counter() - start, 2)
        rows.append(row)
        print(json.dumps(row), flush=True)
        args.out.write_text(json.dumps(found | {"rows": rows}, indent=1) + "\n")
        if "refused" in row and not torch.cuda.is_available():
            break  # the same reason for every shape
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
