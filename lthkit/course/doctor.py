"""``lthkit doctor``: is this machine ready for the course, and how long will each notebook take here?

Run before a class, on each laptop (or once on a typical one). It checks what breaks a lesson
halfway: versions other than the tested ones, a device that does not work, data that is missing or
damaged, an output folder that cannot be written. Then short bursts of training measure this
machine and predict each notebook's training time at each budget, so a teacher knows in advance
whether ``classroom`` fits the hour: LeNet-300-100 for notebooks 00-04, 07 and 08, the small
vision transformer for 09, and each CIFAR-10 network (Conv-2/4/6, ResNet-20) for notebooks 05 and
06, whose cost per iteration a LeNet burst says nothing about.

The bursts train on random tensors of the datasets' shapes: training time does not depend on the
pixel values, and the doctor can then time a machine before its data has arrived.
"""

from __future__ import annotations

import os
import sys
import tempfile
from importlib import metadata
from pathlib import Path

import torch

from lthkit import course
from lthkit.catalogue import DATASETS, check, data_root, dataset_info
from lthkit.data import Split, Splits

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "notebooks" / "outputs"
PINNED = ("torch", "torchvision", "numpy", "matplotlib", "ipywidgets", "papermill", "tqdm")
NEEDED_BY = {
    "mnist": "notebooks 00-04 and 07-10 need it",
    "fashion-mnist": "only 'lthkit imp --dataset fashion-mnist' uses it",
    "cifar10": "notebooks 05, 06 and 10 need it",
}
REQUIRED = ("mnist",)


def tested_versions(constraints: Path = REPO / "constraints.txt") -> dict[str, str]:
    """The pinned ``name==version`` lines of ``constraints.txt``; empty where it is not shipped."""
    if not constraints.exists():
        return {}
    pins = {}
    for line in constraints.read_text().splitlines():
        name, sep, version = line.partition("==")
        if sep and not line.startswith("#"):
            pins[name.strip().lower()] = version.strip()
    return pins


def version_notes() -> list[str]:
    """One note per package whose installed version differs from the tested one (or is missing)."""
    pins, notes = tested_versions(), []
    for name in PINNED:
        try:
            here = metadata.version(name)
        except metadata.PackageNotFoundError:
            notes.append(f"{name} is not installed (tested: {pins.get(name, 'any')})")
            continue
        if name in pins and here.split("+")[0] != pins[name]:
            notes.append(f"{name} {here} here, the course is tested with {pins[name]}")
    return notes


def writable(folder: Path) -> str | None:
    """None if a file can be written in ``folder`` (made if need be), else why not."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".lthkit-doctor-"):
            pass
    except OSError as err:
        return err.strerror or str(err)
    return None


def mnist_shaped(device: torch.device) -> Splits:
    """Random tensors of MNIST's split sizes: enough to time training, useless to learn from."""
    info, g = dataset_info("mnist"), torch.Generator().manual_seed(0)

    def split(n: int) -> Split:
        return Split(torch.rand((n, *info.input_shape), generator=g).to(device),
                     torch.randint(0, info.num_classes, (n,), generator=g).to(device))

    return Splits(info, split(info.train_size), split(info.val_size), split(info.test_size))


def matmul_rate(device: torch.device | str = "cpu", n: int = 2048) -> float:
    """This machine's fp32 matrix-multiply rate in FLOP/s (the best of three runs of five n-by-n
    products, on the threads PyTorch uses): the anchor that says how fast a host is, beside the
    times measured on it."""
    import time

    device = torch.device(device)
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(5):
            a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 5 * 2 * n**3 / best


def format_minutes(minutes: float) -> str:
    if minutes < 1:
        return f"{minutes * 60:.0f} s"
    if minutes < 90:
        return f"{minutes:.1f} min"
    return f"{minutes / 60:.1f} h"


def run_doctor(
    root: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    *,
    device: str = "auto",
    iterations: int = 300,
    cifar_iterations: int = 5,
    log=print,
) -> bool:
    """Print what is ready and what is not, then the predicted times; True when nothing is broken.

    Version differences and the optional datasets are notes; MNIST missing or damaged, a device
    that fails and an unwritable output folder are problems.
    """
    root, out = data_root(root), Path(out) if out is not None else DEFAULT_OUT
    problems = []

    def problem(text: str) -> None:
        problems.append(text)
        log(f"  PROBLEM: {text}")

    log("Environment")
    for key, value in course.environment_report().items():
        log(f"  {key}: {value}")
    if sys.version_info < (3, 11):
        problem(f"Python {sys.version.split()[0]}: the course needs 3.11 or newer")
    for note in version_notes():
        log(f"  note: {note}")

    log("Device")
    try:
        from lthkit.train import resolve_device

        target = resolve_device(device)
        x = torch.ones(64, 64, device=target)
        if float((x @ x).sum()) != 64 ** 3:
            raise RuntimeError("a 64 x 64 matrix product came out wrong")
        log(f"  {target}: works")
    except Exception as err:  # any failure here means training cannot start
        target = None
        problem(f"device {device!r} does not work: {err}")

    log(f"Data in {root}")
    for name in DATASETS:
        state = check(name, root)
        if state.ok:
            log(f"  {name}: present and verified")
            continue
        damaged = [f"{p} (checksum mismatch)" for p in state.corrupted]
        damaged += [f"{p} (differs from its archive)" for p in state.stale]
        what = "; ".join(
            ([f"missing {', '.join(str(p) for p in state.missing)}"] if state.missing else [])
            + ([f"corrupted {', '.join(damaged)}"] if damaged else [])
        )
        text = f"{name}: {what} ({NEEDED_BY[name]}); fix with 'lthkit data download --root {root}'"
        if name in REQUIRED:
            problem(text)
        else:
            log(f"  note: {text}")

    log(f"Output folder {out}")
    why = writable(out)
    if why:
        problem(f"cannot write in {out} ({why}): choose another with --out, or fix its permissions")
    else:
        log("  writable")

    if target is not None:
        log(f"Speed: {iterations} iterations of LeNet-300-100 on {target} (random MNIST-shaped tensors)")
        data = mnist_shaped(target)
        course.measure_speed(data.with_eval_size(100), iterations=min(iterations, 10))  # one-off set-up costs
        speed = course.measure_speed(data, iterations=iterations)
        log(f"  {speed['per_iteration'] * 1000:.2f} ms per iteration, "
            f"{speed['per_round_iteration'] * 1000:.2f} ms per IMP-round iteration (three arms), "
            f"{speed['per_evaluation'] * 1000:.0f} ms per evaluation, "
            f"{speed['per_mask_iteration'] * 1000:.1f} ms per supermask iteration, "
            f"{speed['per_vit_iteration'] * 1000:.1f} ms per vision-transformer iteration")
        log(f"Speed: {cifar_iterations} iterations of each CIFAR-10 network on {target} (random CIFAR-10-shaped tensors)")
        cifar_speed = course.measure_cifar_speed(device=str(target), iterations=cifar_iterations)
        for name, s in cifar_speed.items():
            log(f"  {name}: {s['per_iteration'] * 1000:.0f} ms per iteration, "
                f"{s['per_extra_arm'] * 1000:.0f} ms per further arm beside it, {s['per_image'] * 1000:.2f} ms per evaluated image")
        if min(speed.values()) > 0:
            log_predictions(speed, cifar_speed, log)
        else:
            log(f"  note: {iterations} iterations were too few to tell training from evaluation time; "
                "no prediction (the default, 300, is enough)")

    log("Ready." if not problems else f"{len(problems)} problem(s): see PROBLEM above.")
    return not problems


def log_predictions(speed: dict[str, float], cifar_speed: dict[str, dict[str, float]], log=print) -> None:
    """The table of predicted training minutes, notebook by budget (``course.predicted_minutes``):
    what LeNet-300-100 and the transformer train from their bursts (``course.measure_speed``), what
    the CIFAR-10 networks train from theirs (``course.measure_cifar_speed``)."""
    log("Predicted training time per notebook (a lower bound: plots, checkpoints and starting the "
        "kernel come on top)")
    minutes = {budget: course.predicted_minutes(speed, cifar_speed, budget) for budget in course.BUDGET_NAMES}
    log("  notebook " + "".join(f"{budget:>11}" for budget in course.BUDGET_NAMES))
    for nb in minutes["classroom"]:
        log(f"  {nb:<8} " + "".join(f"{format_minutes(minutes[b][nb]):>11}" for b in course.BUDGET_NAMES))
