"""How fast lthkit finds a ticket, against a hand-written PyTorch loop and the arithmetic bound.

    .venv/bin/python benchmarks/speed.py            # full run, a few minutes on 2 CPU cores
    .venv/bin/python benchmarks/speed.py --quick    # a smoke run with tiny sizes

Prints a table and writes it as JSON (``--out``, default ``benchmarks/speed-<device>.json``).
Everything is measured in one run on one machine, so the ratios are comparable:

- LeNet-300-100, batch 60, Adam, masked, one epoch of MNIST (55,000 images): lthkit's loop;
  the loop a PyTorch user writes (torchvision MNIST, ToTensor + Normalize, DataLoader);
  and the FLOP bound, 6 x weights x samples / this machine's fp32 matrix-multiply rate.
- Conv-2, batch 60, on CIFAR-10-shaped random input, the same three columns (a fraction of an
  epoch, scaled to 45,000 images).
- One IMP round with both controls against one arm alone.
- Loading MNIST the first time and from the cache; peak memory of a whole MNIST IMP run.
- Where the time of one training step goes (PyTorch's profiler, milliseconds per step).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from lthkit.course.doctor import matmul_rate
from lthkit.data import Split, Splits, data_root, dataset_info, load_dataset
from lthkit.masks import Mask, layer_rates, prune_by_magnitude
from lthkit.models import build_model, count_parameters
from lthkit.train import TrainConfig, evaluate, resolve_device, train


def seconds(fn, repeat: int = 1) -> float:
    """Best of ``repeat`` runs: the machine's speed drifts by 10-20% between minutes."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def paper_mask(model):
    mask = Mask.ones_like(model)
    return prune_by_magnitude(model, mask, layer_rates(model, {"conv": 0.1, "fc": 0.2, "output": 0.1}))


def lthkit_training_seconds(model_name: str, data: Splits, iterations: int) -> float:
    """Seconds of lthkit's training loop alone (its two evaluations are timed and taken out)."""
    model = build_model(model_name, data.info.input_shape, data.info.num_classes)
    mask = paper_mask(model)
    config = TrainConfig(iterations=iterations, eval_every=iterations, lr=1.2e-3)
    train(model, data, TrainConfig(iterations=20, eval_every=20), mask=mask, progress=False)  # warm-up
    total = seconds(lambda: train(model, data, config, mask=mask, progress=False), repeat=2)
    evals = seconds(lambda: (evaluate(model, data.val), evaluate(model, data.test)))
    return total - 2 * evals


def handwritten_seconds(model_name: str, dataset, iterations: int, device: torch.device) -> float:
    """The loop most PyTorch tutorials teach: a DataLoader over a torchvision dataset."""
    from torch.utils.data import DataLoader

    model = build_model(model_name, dataset[0][0].shape, 10).to(device)
    mask = paper_mask(model).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1.2e-3)
    loader = DataLoader(dataset, batch_size=60, shuffle=True)

    def run(count):
        for i, (x, y) in enumerate(loader):
            if i == count:
                break
            x, y = x.to(device), y.to(device)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            mask.apply_(model)

    run(20)  # warm-up
    return seconds(lambda: run(iterations), repeat=2)


def flop_bound_seconds(model_name: str, shape, samples: int, rate: float) -> float:
    """6 x weights x samples / rate for fully-connected nets; for conv nets, 6 x multiply-adds."""
    model = build_model(model_name, shape, 10)
    if model_name == "lenet300":
        macs = count_parameters(model)["prunable"]
    else:
        macs = _conv_macs(model, shape)
    return 6 * macs * samples / rate


def _conv_macs(model, shape) -> int:
    macs = 0

    def hook(module, inputs, output):
        nonlocal macs
        if isinstance(module, torch.nn.Conv2d):
            macs += output[0].numel() * module.in_channels * module.kernel_size[0] * module.kernel_size[1]
        elif isinstance(module, torch.nn.Linear):
            macs += module.in_features * module.out_features

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    model(torch.zeros(1, *shape))
    for h in handles:
        h.remove()
    return macs


def synthetic_cifar_splits(train_size: int, device: torch.device) -> Splits:
    g = torch.Generator().manual_seed(0)

    def split(n):
        return Split(torch.randn(n, 3, 32, 32, generator=g).to(device), torch.randint(0, 10, (n,), generator=g).to(device))

    return Splits(dataset_info("cifar10"), split(train_size), split(500), split(500))


STEP_PARTS = {
    "matrix multiplies": ("aten::mm", "aten::addmm", "aten::bmm"),
    "convolutions": ("aten::mkldnn_convolution", "aten::convolution_backward", "aten::cudnn_convolution"),
    "ReLU and max-pooling": ("aten::clamp_min", "aten::threshold_backward", "aten::max_pool2d_with_indices",
                             "aten::max_pool2d_with_indices_backward"),
    "masks (gradients and weights)": ("aten::mul_",),
}


def step_profile(model_name: str, data: Splits, iterations: int) -> dict[str, float]:
    """Milliseconds per training step by kind of work, from PyTorch's profiler.

    The optimiser counts everything under ``Optimizer.step``/``zero_grad`` (its kernel and
    the Python around it); "everything else" is autograd's bookkeeping, the loss, batch
    indexing and the interpreter.
    """
    from torch.profiler import profile

    small = Splits(data.info, data.train, Split(data.val.x[:60], data.val.y[:60]), Split(data.test.x[:60], data.test.y[:60]))
    model = build_model(model_name, data.info.input_shape, data.info.num_classes)
    mask = paper_mask(model)
    train(model, small, TrainConfig(iterations=5, eval_every=5), mask=mask, progress=False)
    with profile() as prof:
        start = time.perf_counter()
        train(model, small, TrainConfig(iterations=iterations, eval_every=iterations), mask=mask, progress=False)
        wall = time.perf_counter() - start
    events = prof.key_averages()
    parts = {part: sum(e.self_cpu_time_total for e in events if e.key in names) for part, names in STEP_PARTS.items()}
    parts["optimizer (fused kernel and the Python around it)"] = sum(
        e.cpu_time_total for e in events if e.key.startswith(("Optimizer.step#", "Optimizer.zero_grad#")))
    ms = {part: us / 1000 / iterations for part, us in parts.items()}
    ms["everything else"] = wall * 1000 / iterations - sum(ms.values())
    ms["step (wall clock, profiled)"] = wall * 1000 / iterations
    return ms


def load_times() -> dict[str, float]:
    source = data_root() / "MNIST" / "raw"
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(source, Path(tmp) / "MNIST" / "raw", ignore=shutil.ignore_patterns("*-ubyte"))
        first = seconds(lambda: load_dataset("mnist", root=tmp, download=False))
        cached = seconds(lambda: load_dataset("mnist", root=tmp), repeat=3)
    return {"first": first, "cached": cached}


def imp_peak_memory_mb(epochs: float, rounds: int) -> float:
    """Peak resident memory of an ``lthkit imp`` process, read from /proc while it runs.

    (``RUSAGE_CHILDREN`` would count the pages the child shares with this large process
    between fork and exec.)
    """
    with tempfile.TemporaryDirectory() as tmp:
        child = subprocess.Popen([sys.executable, "-m", "lthkit.cli", "imp", "--rounds", str(rounds), "--epochs",
                                  str(epochs), "--out", tmp, "--quiet", "--device", "cpu"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        peak = 0.0
        status = Path(f"/proc/{child.pid}/status")
        while child.poll() is None:
            try:
                line = next(l for l in status.read_text().splitlines() if l.startswith("VmHWM:"))
                peak = max(peak, int(line.split()[1]) / 1024)
            except (OSError, StopIteration):
                pass
            time.sleep(0.1)
        if child.returncode != 0:
            raise RuntimeError(f"lthkit imp failed with exit code {child.returncode}")
    return peak


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the script, measures nothing useful")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    quick = args.quick
    rows: list[dict] = []

    rate = matmul_rate(device, 512 if quick else 2048)
    print(f"device {device}, {torch.get_num_threads()} threads, fp32 matmul {rate / 1e9:.0f} GFLOP/s", flush=True)

    mnist = load_dataset("mnist", device=device)
    epoch = 917
    its = 50 if quick else epoch
    scale = epoch / its
    ours = lthkit_training_seconds("lenet300", mnist, its) * scale
    import torchvision
    from torchvision import transforms

    tv = torchvision.datasets.MNIST(str(data_root()), train=True, transform=transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))]))
    tv = torch.utils.data.Subset(tv, range(55000))
    hand = handwritten_seconds("lenet300", tv, its, device) * scale
    bound = flop_bound_seconds("lenet300", (1, 28, 28), 55000, rate)
    rows.append({"what": "LeNet-300-100 epoch (s)", "lthkit": ours, "hand-written": hand, "bound": bound})

    cifar_its = 10 if quick else 150
    cifar_epoch = 750
    cifar = synthetic_cifar_splits(cifar_its * 60, device)
    ours = lthkit_training_seconds("conv2", cifar, cifar_its) * cifar_epoch / cifar_its
    fake = torch.utils.data.TensorDataset(cifar.train.x.cpu(), cifar.train.y.cpu())
    hand = handwritten_seconds("conv2", fake, cifar_its, device) * cifar_epoch / cifar_its
    bound = flop_bound_seconds("conv2", (3, 32, 32), 45000, rate)
    rows.append({"what": "Conv-2 epoch, CIFAR-10 shape (s)", "lthkit": ours, "hand-written": hand, "bound": bound})

    from lthkit.config import make_config
    from lthkit.imp import run_imp

    round_its = 50 if quick else epoch
    one = make_config(rounds=1, controls=(), iterations=round_its, device=str(device))
    both = make_config(rounds=1, controls=("reinit", "random"), iterations=round_its, device=str(device))
    with tempfile.TemporaryDirectory() as tmp:
        run_imp(one, Path(tmp) / "warm", data=mnist, progress=False)
        t_one = seconds(lambda: run_imp(one, Path(tmp) / "one", data=mnist, progress=False, overwrite=True), repeat=2)
        t_both = seconds(lambda: run_imp(both, Path(tmp) / "both", data=mnist, progress=False, overwrite=True), repeat=2)
    # Each run trains round 0 (dense) and round 1; round 1 is what the comparison is about.
    rows.append({"what": "IMP round 1: ticket + 2 controls vs ticket (s)", "lthkit": t_both - t_one / 2,
                 "hand-written": None, "bound": t_one / 2})

    loads = load_times()
    rows.append({"what": "MNIST load: first, cached (s)", "lthkit": loads["cached"], "hand-written": None,
                 "bound": None, "first": loads["first"]})
    peak = imp_peak_memory_mb(0.05 if quick else 1, 1 if quick else 3)
    rows.append({"what": "peak memory, MNIST IMP run (MB)", "lthkit": peak, "hand-written": None, "bound": None})

    print(f"\n{'measurement':48} {'lthkit':>9} {'hand-written':>13} {'bound':>9} {'vs hand':>8} {'vs bound':>9}")
    for row in rows:
        def cell(v, width):
            return f"{v:>{width}.3f}" if isinstance(v, float) else f"{'-':>{width}}"
        vs_hand = row["hand-written"] / row["lthkit"] if row["hand-written"] else None
        vs_bound = row["lthkit"] / row["bound"] if row["bound"] else None
        print(f"{row['what']:48} {cell(row['lthkit'], 9)} {cell(row['hand-written'], 13)} {cell(row['bound'], 9)} "
              f"{cell(vs_hand, 8)} {cell(vs_bound, 9)}")
        row.update(speedup_vs_hand_written=vs_hand, ratio_to_bound=vs_bound)
    print(f"MNIST first load {loads['first']:.2f} s")

    profiles = {"LeNet-300-100": step_profile("lenet300", mnist, 20 if quick else 300),
                "Conv-2": step_profile("conv2", cifar, 3 if quick else 20)}
    print(f"\nwhere a training step goes (ms per step at batch 60; the FLOP bound is "
          f"{1000 * rows[0]['bound'] / epoch:.2f} ms for LeNet-300-100, {1000 * rows[1]['bound'] / cifar_epoch:.1f} ms for Conv-2)")
    print(f"{'':52} " + " ".join(f"{name:>14}" for name in profiles))
    for part in profiles["LeNet-300-100"]:
        print(f"{part:52} " + " ".join(f"{profile[part]:>14.3f}" for profile in profiles.values()))
    out = args.out or Path(__file__).parent / f"speed-{device.type}.json"
    out.write_text(json.dumps({"device": str(device), "threads": torch.get_num_threads(),
                               "matmul_gflops": rate / 1e9, "quick": quick, "rows": rows,
                               "step_ms": profiles}, indent=1) + "\n")
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
