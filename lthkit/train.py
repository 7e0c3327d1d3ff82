"""Training a (masked) network over tensors, with the paper's early-stopping measurement.

The loop is plain PyTorch: index a batch out of the training tensor, forward, backward,
step. Two lines keep a pruned network pruned: gradients of pruned weights are zeroed before
the step (so Adam's moments for them stay zero) and the mask is multiplied back in after it.
Every ``eval_every`` iterations the network is measured on the validation and test sets;
the iteration of minimum validation loss is the paper's early-stopping iteration.

A fresh optimiser is made for every call, so no optimiser state survives a rewind.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from lthkit.data import Split, Splits, iterations_per_epoch
from lthkit.masks import Mask
from lthkit.results import ArmResult, CurvePoint
from lthkit.rewind import Snapshot
from lthkit.seeds import generator

OPTIMIZERS = ("adam", "sgd")


@dataclass(frozen=True)
class TrainConfig:
    """How one network is trained. ``data_seed`` fixes the order of the batches."""

    iterations: int
    batch_size: int = 60
    lr: float = 1.2e-3
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    eval_every: int = 100
    data_seed: int = 0

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}: choose one of {', '.join(OPTIMIZERS)}")
        for name in ("iterations", "batch_size", "eval_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive whole number, got {value!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr!r}")


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple's MPS, then the CPU; any other name is taken as given."""
    if str(name) != "auto":
        device = torch.device(name)
        if device.type == "cuda" and not (torch.cuda.is_available() and (device.index or 0) < torch.cuda.device_count()):
            raise ValueError(f"device '{name}' was asked for but no such CUDA GPU is available: use auto or cpu")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise ValueError("device 'mps' was asked for but Apple's MPS is not available: use auto or cpu")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def make_optimizer(params, config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)


@torch.no_grad()
def evaluate(model: nn.Module, split: Split, batch_size: int = 5000) -> tuple[float, float]:
    """(mean cross-entropy loss, accuracy) of ``model`` on ``split``."""
    was_training = model.training
    model.eval()
    loss = torch.zeros((), device=split.x.device)
    correct = torch.zeros((), device=split.x.device, dtype=torch.long)
    for start in range(0, len(split), batch_size):
        x, y = split.x[start:start + batch_size], split.y[start:start + batch_size]
        logits = model(x)
        loss += F.cross_entropy(logits, y, reduction="sum")
        correct += (logits.argmax(1) == y).sum()
    model.train(was_training)
    return loss.item() / len(split), correct.item() / len(split)


class BatchOrder:
    """Which training examples form batch ``i``: a fresh seeded permutation every epoch.

    Batch ``i`` depends only on ``(data_seed, i)``, so training that starts at a rewind
    iteration sees exactly the batches it would have seen had it run from zero.
    """

    def __init__(self, train_size: int, batch_size: int, data_seed: int, device: torch.device):
        self.n, self.batch_size, self.seed, self.device = train_size, batch_size, data_seed, device
        self.per_epoch = iterations_per_epoch(train_size, batch_size)
        self._epoch, self._perm = -1, None

    def __call__(self, iteration: int) -> torch.Tensor:
        epoch, pos = divmod(iteration, self.per_epoch)
        if epoch != self._epoch:
            self._epoch = epoch
            self._perm = torch.randperm(self.n, generator=generator("order", self.seed, epoch)).to(self.device)
        return self._perm[pos * self.batch_size:(pos + 1) * self.batch_size]


@dataclass
class TrainRun:
    result: ArmResult
    snapshot: Snapshot | None


def train(
    model: nn.Module,
    data: Splits,
    config: TrainConfig,
    *,
    mask: Mask | None = None,
    start_iteration: int = 0,
    snapshot_at: int | None = None,
    progress: bool = True,
    desc: str = "train",
) -> TrainRun:
    """Train ``model`` in place from ``start_iteration`` to ``config.iterations``.

    ``mask`` keeps pruned weights at exactly zero. ``snapshot_at`` keeps a copy of the
    weights after that many iterations (the rewind point of late rewinding).
    """
    if not 0 <= start_iteration < config.iterations:
        raise ValueError(f"start_iteration {start_iteration} must lie in [0, {config.iterations})")
    device = data.device
    model.to(device).train()
    params = dict(model.named_parameters())
    masked = [(params[n], m.to(device)) for n, m in mask.items()] if mask is not None else []
    with torch.no_grad():
        for p, m in masked:
            p.mul_(m)
    optimizer = make_optimizer(model.parameters(), config)
    order = BatchOrder(len(data.train), config.batch_size, config.data_seed, device)
    snapshot = Snapshot.of(model, start_iteration) if snapshot_at == start_iteration else None

    curve: list[CurvePoint] = []
    running = torch.zeros((), device=device)
    steps_since = 0
    first_loss = None
    pending = evaluate(model, data.val) + evaluate(model, data.test)

    def record(iteration: int, train_loss: float, measured: tuple) -> None:
        val_loss, val_acc, _, test_acc = measured
        curve.append(CurvePoint(iteration, train_loss, val_loss, val_acc, test_acc))

    bar = tqdm(total=config.iterations - start_iteration, desc=desc, disable=not progress, leave=False)
    for it in range(start_iteration, config.iterations):
        idx = order(it)
        loss = F.cross_entropy(model(data.train.x[idx]), data.train.y[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for p, m in masked:
            p.grad.mul_(m)
        optimizer.step()
        with torch.no_grad():
            for p, m in masked:
                p.mul_(m)
            running += loss.detach()
        steps_since += 1
        if first_loss is None:
            first_loss = loss.item()
            record(start_iteration, first_loss, pending)
        done = it + 1
        if snapshot_at == done:
            snapshot = Snapshot.of(model, done)
        if done % config.eval_every == 0 or done == config.iterations:
            measured = evaluate(model, data.val) + evaluate(model, data.test)
            record(done, (running / steps_since).item(), measured)
            running.zero_()
            steps_since = 0
            bar.update(done - bar.n - start_iteration)
            bar.set_postfix(val_acc=f"{measured[1]:.4f}")
    bar.close()
    return TrainRun(ArmResult.from_curve(curve), snapshot)
