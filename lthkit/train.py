"""Training (masked) networks over tensors, with the paper's early-stopping measurement.

The loop is plain PyTorch: index a batch out of the training tensor, forward, backward,
step. Two lines keep a pruned network pruned: gradients of pruned weights are zeroed before
the step (so Adam's moments for them stay zero) and the mask is multiplied back in after it.
Every ``eval_every`` iterations the network is measured on the validation and test sets;
the iteration of minimum validation loss is the paper's early-stopping iteration.

Speed comes from doing less around the arithmetic, never from changing it: the data are
tensors already on the device, the optimiser is PyTorch's fused one (one kernel for all
parameters), convolutions on the CPU run channels-last (oneDNN's fast layout), and
``train_together`` trains several networks in one loop (the arms of an IMP round, and the runs
of several seeds), so picking a batch, the backward call and the optimiser call are paid once
per step, not once per network. Its plain loop (``LoopNetworks``) gives each network exactly
the arithmetic it would have alone; on a GPU, where small networks leave the chip idle, it
stacks them into one computation instead (``lthkit.stacked``), equal to float rounding.

A fresh optimiser is made for every call, so no optimiser state survives a rewind. It
optimises the parameters that require gradients: a supermask's frozen weights are left out.

Long trainings can be checkpointed (``checkpoint``, ``resume``): every few minutes of wall time,
at an evaluation, the loop hands out everything it carries from one step to the next (each
network's weights, the optimiser's state, the iteration, the curves and snapshots so far, the
global random state). The batches and their augmentation are functions of (seed, iteration),
so training resumed from that state ends bit for bit where uninterrupted training ends.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import astuple, dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from lthkit.cores import taking_turns
from lthkit.data import Split, Splits, augment, iterations_per_epoch
from lthkit.masks import Mask
from lthkit.results import ArmResult, CurvePoint
from lthkit.rewind import Snapshot
from lthkit.seeds import generator
from lthkit.settings import ConfigError, choice, flag, number, option, whole
from lthkit.stacked import Engine, StackedNetworks, choose_engine

OPTIMIZERS = ("adam", "sgd")


def _milestones(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"cannot read milestones {text!r}: give iterations such as 32000,48000") from None


@dataclass(frozen=True)
class TrainConfig:
    """How one network is trained. ``data_seed`` fixes the order of the batches (and their
    augmentation); ``warmup`` and ``milestones`` make the learning rate a schedule (``lr_at``).
    Each setting is checked here, once (``lthkit.settings``); the options of ``lthkit imp`` and
    ``lthkit train`` are made from these fields."""

    iterations: int = field(metadata=option(
        "training iterations per run (default: the paper's, 50000 for lenet300)", group="length"))
    batch_size: int = field(default=60, metadata=option("batch size (default: the paper's, 60)"))
    lr: float = field(default=1.2e-3, metadata=option("learning rate (default: the paper's for the model)"))
    optimizer: str = field(default="adam", metadata=option("optimiser (default: the paper's, adam)", choices=OPTIMIZERS))
    momentum: float = field(default=0.9, metadata=option("momentum of SGD (default: the paper's, 0.9)"))
    weight_decay: float = field(default=0.0, metadata=option(
        "L2 weight decay (default: the paper's, 0 for the Adam nets)"))
    eval_every: int = field(default=100, metadata=option(
        "iterations between evaluations on validation and test sets (default: 100)"))
    data_seed: int = 0  # an IMP run's is its seed
    warmup: int = field(default=0, metadata=option(
        "iterations of linear learning-rate warm-up (default: the paper's, 0)"))
    milestones: tuple[int, ...] = field(default=(), metadata=option(
        "iterations at which the learning rate drops (by --gamma), such as 32000,48000 (default: the paper's, "
        "scaled to --iterations)", parse=_milestones))
    gamma: float = field(default=0.1, metadata=option(
        "factor of each learning-rate drop at a milestone (default: 0.1)"))
    augment: bool = field(default=False, metadata=option(
        "random crops and flips of training images (default: the paper's, on for resnet20)"))

    def lr_at(self, iteration: int) -> float:
        """The learning rate of step ``iteration``: a linear warm-up over the first ``warmup``
        steps, then ``gamma`` times smaller at each milestone passed.

        It depends on the iteration alone, so training that starts at a rewind iteration k
        picks the schedule up at k: that is learning-rate rewinding.
        """
        warm = min(1.0, (iteration + 1) / self.warmup) if self.warmup else 1.0
        return self.lr * warm * self.gamma ** sum(iteration >= m for m in self.milestones)

    def __post_init__(self):
        set_ = object.__setattr__  # frozen: each setting is stored in its checked form
        choice("optimizer", self.optimizer, OPTIMIZERS)
        for name in ("iterations", "batch_size", "eval_every"):
            whole(name, getattr(self, name))
        whole("data_seed", self.data_seed, None)
        set_(self, "lr", number("lr", self.lr, positive=True))
        for name in ("momentum", "weight_decay"):
            set_(self, name, number(name, getattr(self, name)))
        set_(self, "gamma", number("gamma", self.gamma))
        if whole("warmup", self.warmup, 0) >= self.iterations:
            raise ConfigError(f"warmup must be a whole number of iterations in [0, {self.iterations}), "
                              f"got {self.warmup!r}")
        milestones = tuple(self.milestones) if isinstance(self.milestones, (tuple, list)) else None
        if milestones is None or not all(isinstance(m, int) and not isinstance(m, bool) and m > 0 for m in milestones) \
                or list(milestones) != sorted(set(milestones)):
            raise ConfigError(f"milestones must be increasing iterations, such as 32000,48000, got {self.milestones!r}")
        set_(self, "milestones", milestones)
        flag("augment", self.augment)


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


FUSED_DEVICES = ("cpu", "cuda", "mps")


def make_optimizer(params, config: TrainConfig, *, capturable: bool = False) -> torch.optim.Optimizer:
    """Adam or SGD with momentum, as PyTorch's fused kernel where the device has one.

    The fused kernel updates every parameter in one pass; it differs from the textbook
    per-tensor update only in the last bits of float rounding. ``capturable``: Adam safe to
    capture in a CUDA graph (``lthkit.stacked``).
    """
    params = list(params)
    fused = all(p.device.type in FUSED_DEVICES for p in params)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay, fused=fused,
                                **({"capturable": True} if capturable else {}))
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay,
                           fused=fused)


def masked_step(model: nn.Module, mask: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer,
                loss: torch.Tensor) -> None:
    """One optimiser step on ``loss`` that leaves every weight ``mask`` prunes at exactly zero.

    The gradients of pruned weights are zeroed before the step, so Adam keeps no moments for them
    and weight decay has nothing to pull; the mask is multiplied into the weights after it, so a
    weight that was not zero (the first step after pruning) is zero from then on. Notebook 03 has
    the learner write this; ``train(..., step=)`` trains with a learner's own. ``LoopNetworks``
    does the same for several networks with one backward call."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    params = dict(model.named_parameters())
    for name, m in mask.items():
        params[name].grad.mul_(m)
    optimizer.step()
    with torch.no_grad():
        for name, m in mask.items():
            params[name].mul_(m)


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


def channels_last_is_safe(model: nn.Module) -> bool:
    """Whether ``model`` may train in the channels-last format on the CPU. oneDNN's kernel for the
    weights' gradient of a strided 1x1 convolution over 2 or 4 input channels in channels-last never
    returns (torch 2.14, measured here: 4 to 8 channels, stride 2, 32 by 32 images); a ResNet-20 keeping
    a quarter of its channels (notebook 10) has such a shortcut. A network with a 1x1 convolution over
    fewer than 8 channels trains in the contiguous format instead, a little slower and never stuck."""
    return all(m.in_channels >= 8 for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1))


class LoopNetworks:
    """Networks trained one after another within each step: the plain loop, and the reference
    arithmetic (each network bit for bit as trained alone).

    One backward call over the list of losses gives each network exactly the gradient of its
    own loss, and the optimiser updates each parameter by itself; only picking a batch, the
    backward call and the optimiser call are shared. ``StackedNetworks`` has the same methods.
    """

    def __init__(self, models: list[nn.Module], masks: list[Mask | None], data: Splits, config: TrainConfig,
                 seeds: list[int], step: Callable | None = None):
        self.models, self.data, self.config, self.seeds, self.own_step = models, data, config, seeds, step
        images = data.train.x.dim() == 4 and data.device.type == "cpu"
        fast = images and all(channels_last_is_safe(model) for model in models)
        self.memory_format = torch.channels_last if fast else torch.contiguous_format
        self.masked, self.masks = [], []
        for model, mask in zip(models, masks):
            model.to(data.device, memory_format=self.memory_format).train()
            params = dict(model.named_parameters())
            pairs = {n: (params[n], torch.empty_like(params[n]).copy_(m)) for n, m in (mask or {}).items()}
            self.masked += pairs.values()
            self.masks.append({n: m for n, (_, m) in pairs.items()})
        with torch.no_grad():
            for p, m in self.masked:
                p.mul_(m)
        trained = [[p for p in model.parameters() if p.requires_grad] for model in models]
        self.optimizers = ([make_optimizer([p for ps in trained for p in ps], config)] if step is None
                           else [make_optimizer(ps, config) for ps in trained])

    def optimizer(self, i: int) -> torch.optim.Optimizer:
        """Network ``i``'s optimiser: one shared by all (each parameter updated by itself), or its own
        when a learner's step (``masked_step``'s signature) steps each network."""
        return self.optimizers[i if self.own_step else 0]

    def __len__(self) -> int:
        return len(self.models)

    def step(self, batches: dict[int, torch.Tensor], lr: float | None = None, iteration: int = 0) -> torch.Tensor:
        data, config = self.data, self.config
        inputs = {}
        for seed, idx in batches.items():
            x = data.train.x.index_select(0, idx)
            if config.augment:
                x = augment(x, generator("augment", seed, iteration))
            inputs[seed] = (x.contiguous(memory_format=self.memory_format), data.train.y.index_select(0, idx))
        if lr is not None:
            for optimizer in self.optimizers:
                for group in optimizer.param_groups:
                    group["lr"] = lr
        losses = [F.cross_entropy(model(inputs[s][0]), inputs[s][1]) for model, s in zip(self.models, self.seeds)]
        if self.own_step:
            for model, mask, optimizer, loss in zip(self.models, self.masks, self.optimizers, losses):
                self.own_step(model, dict(mask), optimizer, loss)
            return torch.stack(losses).detach()
        optimizer = self.optimizers[0]
        optimizer.zero_grad(set_to_none=True)
        torch.autograd.backward(losses)
        for p, m in self.masked:
            p.grad.mul_(m)
        optimizer.step()
        with torch.no_grad():
            for p, m in self.masked:
                p.mul_(m)
        return torch.stack(losses).detach()

    def measure(self, split: Split) -> tuple[list[float], list[float]]:
        measured = [evaluate(model, split) for model in self.models]
        return [m[0] for m in measured], [m[1] for m in measured]

    def weights(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.models[i].state_dict().items()}

    def network_state(self, i: int) -> dict:
        state = self.optimizer(i).state
        return {"model": self.weights(i),
                "optimizer": {n: {k: v.detach().clone() for k, v in state[p].items()}
                              for n, p in self.models[i].named_parameters() if p in state and state[p]}}

    @torch.no_grad()
    def load_network_state(self, i: int, saved: dict) -> None:
        """Take back what ``network_state(i)`` handed out: as ``Optimizer.load_state_dict`` places
        state, moments beside their weights, the step count there too only for a fused optimiser."""
        optimizer = self.optimizer(i)
        model, fused = self.models[i], optimizer.defaults.get("fused")
        model.load_state_dict(saved["model"])
        for n, p in model.named_parameters():
            if n in saved["optimizer"]:
                optimizer.state[p] = {k: (v.to(p.device) if k != "step" or fused else v).clone()
                                           for k, v in saved["optimizer"][n].items()}

    def write_back(self) -> None:
        """The networks were trained in place."""


def _cpu_copy(x):
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", copy=True)
    if isinstance(x, dict):
        return {k: _cpu_copy(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_cpu_copy(v) for v in x)
    return x


@dataclass
class TrainRun:
    result: ArmResult
    snapshots: dict[int, Snapshot]  # iteration -> the weights then, for each iteration of ``snapshot_at``

    @property
    def snapshot(self) -> Snapshot | None:
        """The one snapshot of ``snapshot_at=k`` (the rewind point of late rewinding), or None."""
        if len(self.snapshots) > 1:
            raise ValueError(f"snapshots were taken at {sorted(self.snapshots)}: read them from .snapshots")
        return next(iter(self.snapshots.values()), None)


def train(
    model: nn.Module,
    data: Splits,
    config: TrainConfig,
    *,
    mask: Mask | None = None,
    start_iteration: int = 0,
    snapshot_at: int | Collection[int] | None = None,
    progress: bool = True,
    desc: str = "train",
    checkpoint: Callable[[dict], None] | None = None,
    checkpoint_every_s: float = 300.0,
    resume: dict | None = None,
    engine: str = "auto",
    step: Callable | None = None,
) -> TrainRun:
    """Train ``model`` in place from ``start_iteration`` to ``config.iterations``.

    ``mask`` keeps pruned weights at exactly zero. ``snapshot_at`` keeps a copy of the
    weights after that many iterations (the rewind point of late rewinding), or after each of
    several (the rewind points an instability analysis compares). ``checkpoint``, ``resume``,
    ``engine`` and ``step`` are ``train_together``'s.
    """
    return train_together([model], data, config, masks=[mask], start_iteration=start_iteration,
                          snapshot_at=snapshot_at, progress=progress, desc=desc, checkpoint=checkpoint,
                          checkpoint_every_s=checkpoint_every_s, resume=resume, engine=engine, step=step)[0]


def train_together(
    models: list[nn.Module],
    data: Splits,
    config: TrainConfig,
    *,
    masks: list[Mask | None] | None = None,
    data_seeds: list[int] | None = None,
    engine: str | Engine = "auto",
    start_iteration: int = 0,
    snapshot_at: int | Collection[int] | None = None,
    progress: bool = True,
    desc: str = "train",
    checkpoint: Callable[[dict], None] | None = None,
    checkpoint_every_s: float = 300.0,
    resume: dict | None = None,
    step: Callable | None = None,
) -> list[TrainRun]:
    """Train several networks side by side, each as ``train`` would alone.

    ``data_seeds`` gives each network its batches' seed (default: all ``config.data_seed``): the
    arms of several IMP runs train together, each on its own run's data order. ``engine`` says
    how (``lthkit.stacked.choose_engine``): ``loop`` trains them one after another in each step,
    every network bit for bit where it would end alone; ``stacked`` as one batched computation
    (a CUDA graph on CUDA), to float rounding; ``auto`` picks what is faster on the device.

    ``checkpoint(state)`` is called at an evaluation once ``checkpoint_every_s`` seconds of wall
    time have passed since training (or the last checkpoint) began (0: at every evaluation but
    the last), with the state to save (CPU copies, ready for ``torch.save``): per network, its
    weights, optimiser state, curve and snapshots (``split_state`` cuts it into runs). Checkpoints
    come at evaluations only: there the running loss is empty, and a clock read per evaluation
    is all the cost between checkpoints.
    ``resume=state`` continues from such a state instead of from the models' weights: pass the
    same models (any weights), data, config, masks, seeds, ``start_iteration`` and ``snapshot_at``;
    the engine may differ.
    ``step(model, mask, optimizer, loss)``, with ``masked_step``'s contract, replaces lthkit's masked
    step (a learner's own, notebook 03): each network then has its own optimiser, in the loop.
    """
    masks, seeds, wanted = _checked_together(models, masks, data_seeds, config, start_iteration, snapshot_at)
    nets = _networks(models, masks, data, config, seeds, engine, step)
    kept = _Kept(nets, data, seeds, wanted, fingerprint={
        "config": repr(astuple(replace(config, data_seed=0))), "start_iteration": start_iteration,
        "snapshot_at": sorted(wanted)})
    orders = {s: BatchOrder(len(data.train), config.batch_size, s, data.device) for s in dict.fromkeys(seeds)}
    scheduled = bool(config.warmup or config.milestones)
    running, steps_since = torch.zeros(len(models), device=data.device), 0
    with taking_turns(data.device) as turn:
        if resume is None:
            first = start_iteration
            kept.snapshot_if_wanted(start_iteration)
            pending = kept.measure()
        else:
            first, pending = kept.restore(resume, start_iteration, config.iterations), None
        bar = tqdm(total=config.iterations - start_iteration, initial=first - start_iteration, desc=desc,
                   disable=None if progress else True, leave=False)
        last_checkpoint = time.monotonic()
        for it in range(first, config.iterations):
            turn()
            batches = {s: order(it) for s, order in orders.items()}
            running += nets.step(batches, config.lr_at(it) if scheduled else None, it)
            steps_since += 1
            if it == start_iteration:
                kept.add_point(start_iteration, running.tolist(), pending)
            done = it + 1
            kept.snapshot_if_wanted(done)
            if done % config.eval_every == 0 or done == config.iterations:
                measured = kept.measure()
                kept.add_point(done, (running / steps_since).tolist(), measured)
                running.zero_()
                steps_since = 0
                bar.update(done - bar.n - start_iteration)
                bar.set_postfix(val_acc=" ".join(f"{m[1]:.4f}" for m in measured))
                if (checkpoint is not None and done < config.iterations
                        and time.monotonic() - last_checkpoint >= checkpoint_every_s):
                    checkpoint(kept.state(done))
                    last_checkpoint = time.monotonic()
    bar.close()
    nets.write_back()
    return kept.runs()


def _checked_together(models: list[nn.Module], masks: list | None, data_seeds: list[int] | None, config: TrainConfig,
                      start_iteration: int, snapshot_at: int | Collection[int] | None
                      ) -> tuple[list, list[int], set[int]]:
    """``train_together``'s masks, data seeds and snapshot iterations, one per network, checked."""
    if not 0 <= start_iteration < config.iterations:
        raise ValueError(f"start_iteration {start_iteration} must lie in [0, {config.iterations})")
    masks = masks if masks is not None else [None] * len(models)
    if len(masks) != len(models):
        raise ValueError(f"{len(models)} models but {len(masks)} masks: give one mask (or None) per model")
    seeds = list(data_seeds) if data_seeds is not None else [config.data_seed] * len(models)
    if len(seeds) != len(models):
        raise ValueError(f"{len(models)} models but {len(seeds)} data seeds: give one seed per model")
    wanted = {snapshot_at} if isinstance(snapshot_at, int) else set(snapshot_at or ())
    if any(not start_iteration <= k <= config.iterations for k in wanted):
        raise ValueError(f"snapshot iterations {sorted(wanted)} must lie in [{start_iteration}, {config.iterations}]")
    return masks, seeds, wanted


def _networks(models: list[nn.Module], masks: list, data: Splits, config: TrainConfig, seeds: list[int],
              engine: str | Engine, step: Callable | None) -> LoopNetworks | StackedNetworks:
    """The engine's networks (``LoopNetworks`` or ``StackedNetworks``, one interface): ``engine`` as
    ``lthkit.stacked.choose_engine`` resolves it; a learner's own step trains in the loop."""
    if step is not None:
        if (engine.name if isinstance(engine, Engine) else engine) == "stacked":
            raise ConfigError("a step of your own trains in the loop, one network at a time: use engine 'loop' or 'auto'")
        engine = Engine("loop", False, "a step of your own")
    if not isinstance(engine, Engine):
        engine = choose_engine(engine, models, data.device, config.augment)
    if engine.name == "stacked":
        return StackedNetworks(models, masks, data.train.x, data.train.y, seeds,
                               lambda params, capturable: make_optimizer(params, config, capturable=capturable),
                               graph=engine.graph)
    return LoopNetworks(models, masks, data, config, seeds, step)


class _Kept:
    """What training keeps besides the networks themselves: each network's curve (a point per
    evaluation) and snapshots (its weights at the ``wanted`` iterations). ``state`` hands out
    everything the loop carries past an evaluation, the networks' weights and optimiser state
    included, for a checkpoint; ``restore`` takes such a state back."""

    def __init__(self, nets: LoopNetworks | StackedNetworks, data: Splits, seeds: list[int], wanted: set[int],
                 fingerprint: dict):
        self.nets, self.data, self.seeds, self.wanted, self.fingerprint = nets, data, seeds, wanted, fingerprint
        self.curves: list[list[CurvePoint]] = [[] for _ in seeds]
        self.snapshots: list[dict[int, Snapshot]] = [{} for _ in seeds]

    def measure(self) -> list[tuple[float, ...]]:
        val, test = self.nets.measure(self.data.val), self.nets.measure(self.data.test)
        return list(zip(val[0], val[1], test[0], test[1]))

    def snapshot_if_wanted(self, iteration: int) -> None:
        if iteration in self.wanted:
            for i, kept in enumerate(self.snapshots):
                kept[iteration] = Snapshot(iteration, self.nets.weights(i))

    def add_point(self, iteration: int, train_losses: list[float], measured: list[tuple[float, ...]]) -> None:
        for curve, train_loss, (val_loss, val_acc, _, test_acc) in zip(self.curves, train_losses, measured):
            curve.append(CurvePoint(iteration, train_loss, val_loss, val_acc, test_acc))

    def state(self, iteration: int) -> dict:
        """Everything the loop carries past ``iteration`` (an evaluation, so no running loss), as
        copies on the CPU: training going on cannot change a state already handed out."""
        device = self.data.device
        return _cpu_copy({
            **self.fingerprint, "iteration": iteration,
            "networks": [{**self.nets.network_state(i), "data_seed": seed,
                          "curve": [astuple(p) for p in self.curves[i]],
                          "snapshots": {k: s.state for k, s in self.snapshots[i].items()}}
                         for i, seed in enumerate(self.seeds)],
            "rng": torch.get_rng_state(),
            "cuda_rng": [torch.cuda.get_rng_state(device)] if device.type == "cuda" else [],
        })

    def restore(self, saved: dict, start_iteration: int, iterations: int) -> int:
        """Take back a ``state``; the iteration training goes on from."""
        mismatch = [k for k in ("config", "start_iteration", "snapshot_at") if saved.get(k) != self.fingerprint[k]]
        if [n.get("data_seed") for n in saved.get("networks", ())] != self.seeds:
            mismatch.append("networks")
        if mismatch or not start_iteration < saved["iteration"] < iterations:
            raise ValueError(f"the checkpoint to resume from belongs to other training ({', '.join(mismatch) or 'iteration'} "
                             f"differ): resume with the models, config and start_iteration that made it")
        device = self.data.device
        for i, network in enumerate(saved["networks"]):
            self.nets.load_network_state(i, network)
            self.curves[i][:] = [CurvePoint(*p) for p in network["curve"]]
            self.snapshots[i].update({k: Snapshot(k, {n: v.to(device) for n, v in st.items()})
                                      for k, st in network["snapshots"].items()})
        torch.set_rng_state(saved["rng"])
        restore_cuda_rng(saved.get("cuda_rng") or [], device)
        return saved["iteration"]

    def runs(self) -> list[TrainRun]:
        return [TrainRun(ArmResult.from_curve(curve), kept) for curve, kept in zip(self.curves, self.snapshots)]


def restore_cuda_rng(states: list, device: torch.device) -> None:
    """The training device's random state, as a checkpoint saved it: only that GPU's (a checkpoint
    from before held every visible GPU's, and is read at the device's index), so a run resumes where
    fewer GPUs are visible than where it started."""
    if device.type != "cuda" or not states:
        return
    index = 0 if len(states) == 1 else (device.index if device.index is not None else torch.cuda.current_device())
    if index >= len(states):
        raise ValueError(f"the checkpoint holds no random state for {device}: resume on the GPU it was made on")
    torch.cuda.set_rng_state(states[index], device)


def split_state(state: dict, groups: list[list[int]]) -> list[dict]:
    """A ``train_together`` checkpoint cut into one per group of its networks (the arms of each
    run of several trained together), each what training that group alone would have saved."""
    return [{**state, "networks": [state["networks"][i] for i in group]} for group in groups]


def join_states(states: list[dict]) -> dict:
    """``split_state`` undone: one checkpoint of every group's networks, in order."""
    first = states[0]
    if any({k: v for k, v in s.items() if k not in ("networks", "rng", "cuda_rng")}
           != {k: v for k, v in first.items() if k not in ("networks", "rng", "cuda_rng")} for s in states):
        raise ValueError("the checkpoints to join were made at different points of training")
    return {**first, "networks": [n for s in states for n in s["networks"]]}
