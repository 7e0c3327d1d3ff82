"""Dynamic sparse training: one training, sparse from the first step, with a mask that moves.

IMP pays for its ticket with r + 1 trainings, and pruning at initialisation fixes its mask before
it has seen anything. SET and RigL do neither: the network starts from a random mask at the final
sparsity (``lthkit.dynamic_masks``: per-layer counts uniform or Erdős-Rényi-Kernel) and trains once;
every ``update_every`` steps a cosine-decaying fraction of each layer's weights is dropped (the
smallest magnitudes) and as many dead positions grown (SET at random, RigL where the gradient is
largest), until ``end_fraction`` of training. ``static`` never updates: a random mask at the same
per-layer counts, trained as it is, the baseline both must beat.

The loop is ``lthkit.train``'s pieces: the same batches (``BatchOrder``), optimiser
(``make_optimizer``), learning-rate schedule and evaluations, and its masked step (gradients of dead
weights zeroed before the step, the mask multiplied in after it). At an update step the dense
gradient is read before it is masked: RigL needs the gradient of the weights that are zero.

``run_sparse`` saves a run as IMP saves a round, so that plots, ``ticket_costs``, ``load_trained``,
``load_ticket`` and ``lthkit export RUN --round 0`` read it: ``results.json`` with one round (0, the
final mask's sparsity, the trained network as its ``ticket`` arm), ``round_00.pt`` (final mask and
trained weights), ``rewind_point.pt`` (the initial weights under the initial mask), ``timings.json``;
and what only a moving mask has: ``initial_mask.pt`` and ``mask_updates.json`` (each update's
iteration, fraction and connections moved per layer). Same seed, same masks and same curve.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from lthkit.config import ExperimentConfig
from lthkit.cores import taking_turns
from lthkit.data import Splits, load_dataset
from lthkit.dynamic_masks import (DISTRIBUTIONS, layer_counts, moved_count, random_sparse_mask, rigl_update,
                                  set_update, update_fraction, update_iterations)
from lthkit.masks import Mask
from lthkit.models import build_model
from lthkit.results import ArmResult, CurvePoint, Results, RoundResult
from lthkit.rewind import Snapshot
from lthkit.run_folder import RunFolder
from lthkit.seeds import generator
from lthkit.settings import ConfigError, choice, number, option, whole
from lthkit.train import BatchOrder, TrainConfig, evaluate, make_optimizer

METHODS = ("static", "set", "rigl")
INITIAL_MASK = "initial_mask.pt"
UPDATES = "mask_updates.json"


def _fraction(name: str, value: object, *, upper_open: bool = False) -> float:
    value = number(name, value, positive=True)
    if value > 1 or (upper_open and value == 1):
        raise ConfigError(f"{name} must lie in (0, 1{')' if upper_open else ']'}, got {value!r}")
    return value


@dataclass(frozen=True)
class SparseConfig:
    """How the mask of a network trained sparse from the start is chosen and moved. Defaults are
    RigL's: ERK densities, an update every 100 steps moving 30% (cosine-decayed), none after three
    quarters of training."""

    method: str = field(default="rigl", metadata=option(
        "train sparse from the first step: rigl (Evci et al. 2020), set (Mocanu et al. 2018) or static "
        "(a random mask that never moves)", flag="--sparse", choices=METHODS))
    density: float = field(default=0.1, metadata=option(
        "fraction of the prunable weights kept all through training (default: 0.1)"))
    distribution: str = field(default="erk", metadata=option(
        "per-layer densities: erk (Erdős-Rényi-Kernel, RigL's default) or uniform", choices=DISTRIBUTIONS))
    update_every: int = field(default=100, metadata=option(
        "steps between mask updates (default: 100, RigL's)"))
    drop_fraction: float = field(default=0.3, metadata=option(
        "fraction of each layer's weights moved at the first update, cosine-decayed (default: 0.3, RigL's)"))
    end_fraction: float = field(default=0.75, metadata=option(
        "fraction of training after which the mask no longer moves (default: 0.75, RigL's)"))

    def __post_init__(self):
        set_ = object.__setattr__
        choice("sparse method", self.method, METHODS)
        choice("distribution", self.distribution, DISTRIBUTIONS)
        set_(self, "density", _fraction("density", self.density))
        whole("update_every", self.update_every)
        set_(self, "drop_fraction", _fraction("drop_fraction", self.drop_fraction, upper_open=True))
        set_(self, "end_fraction", _fraction("end_fraction", self.end_fraction))

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class MaskUpdate:
    """One update of the mask: when, the fraction asked for, how many connections moved per layer, and
    afterwards how many alive connections were alive from the start and how many positions have ever been."""

    iteration: int
    fraction: float
    moved: dict[str, int]
    from_start: int
    ever_alive: int


@dataclass
class SparseRun:
    """A network trained sparse from the start: its result, its first and last masks, every update."""

    result: ArmResult
    initial_mask: Mask
    mask: Mask
    updates: list[MaskUpdate]
    model: nn.Module
    seconds: float = 0.0


class SparseUpdateError(ValueError):
    """A drop-and-grow rule (a learner's) returned a mask that breaks what an update must keep."""


def _checked(name: str, new, old: torch.Tensor, count: int, weight: torch.Tensor, state: dict) -> torch.Tensor:
    """The new mask of layer ``name``, refused unless it moved exactly ``count`` connections, grew
    only dead positions and left the grown weights and their optimiser state at zero."""
    if not isinstance(new, torch.Tensor) or new.shape != old.shape:
        raise SparseUpdateError(f"your drop_and_grow returned for {name} {getattr(new, 'shape', type(new).__name__)}, "
                                f"not a mask of shape {tuple(old.shape)}")
    new = new.detach().to(old.device, old.dtype)
    if not bool(((new == 0) | (new == 1)).all()):
        raise SparseUpdateError(f"your drop_and_grow returned a mask for {name} with values other than 0 and 1")
    grown, dropped = (new == 1) & (old == 0), (new == 0) & (old == 1)
    if int(new.sum()) != int(old.sum()) or int(grown.sum()) != count:
        raise SparseUpdateError(f"your drop_and_grow dropped {int(dropped.sum())} and grew {int(grown.sum())} "
                                f"connections of {name}: move exactly {count}, keeping the layer's count")
    if bool((weight.detach()[grown] != 0).any()):
        raise SparseUpdateError(f"your drop_and_grow left grown weights of {name} non-zero: they start at zero")
    for key, value in state.items():
        if isinstance(value, torch.Tensor) and value.shape == weight.shape and bool((value[grown] != 0).any()):
            raise SparseUpdateError(f"your drop_and_grow kept the optimiser's {key} of grown weights of {name}: "
                                    f"reset it to zero")
    return new


def train_sparse(model: nn.Module, data: Splits, training: TrainConfig, sparse: SparseConfig, *, seed: int,
                 update: Callable | None = None, on_update: Callable | None = None, progress: bool = False,
                 desc: str = "sparse") -> SparseRun:
    """Train ``model`` sparse from the first step, as ``sparse`` says.

    The initial mask is drawn from ``seed`` (SET's growth too); the batches follow
    ``training.data_seed``. ``update(weight, grad, mask, count, state) -> mask`` replaces RigL's
    drop-and-grow of one layer (``dynamic_masks.rigl_update``, a learner's own in notebook 12); each
    mask it returns is checked. ``on_update(iteration, model, old_masks, new_masks, optimizer)`` is
    called after each update, before that step's optimiser step.
    """
    device = data.device
    model.to(device).train()
    params = dict(model.named_parameters())
    initial = random_sparse_mask(model, layer_counts(model, sparse.density, sparse.distribution),
                                 generator("sparse-mask", seed))
    mask = {name: m.to(device) for name, m in initial.items()}
    ever = {name: m.clone() for name, m in mask.items()}
    with torch.no_grad():
        for name, m in mask.items():
            params[name].mul_(m)
    optimizer = make_optimizer([p for p in model.parameters() if p.requires_grad], training)
    order = BatchOrder(len(data.train), training.batch_size, training.data_seed, device)
    end = sparse.end_fraction * training.iterations
    due = set() if sparse.method == "static" else set(update_iterations(training.iterations, sparse.update_every,
                                                                         sparse.end_fraction))
    scheduled = bool(training.warmup or training.milestones)
    updates: list[MaskUpdate] = []
    curve: list[CurvePoint] = []

    def measure() -> tuple[float, float, float]:
        val_loss, val_acc = evaluate(model, data.val)
        return val_loss, val_acc, evaluate(model, data.test)[1]

    pending, running, steps = measure(), torch.zeros((), device=device), 0
    start = time.perf_counter()
    with taking_turns(device) as turn:
        for it in tqdm(range(training.iterations), desc=desc, disable=not progress, leave=False):
            turn()
            idx = order(it)
            if scheduled:
                for group in optimizer.param_groups:
                    group["lr"] = training.lr_at(it)
            loss = F.cross_entropy(model(data.train.x.index_select(0, idx)), data.train.y.index_select(0, idx))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if it in due:
                fraction, before = update_fraction(it, sparse.drop_fraction, end), dict(mask)
                moved = {}
                for name, old in before.items():
                    p = params[name]
                    count = moved_count(fraction, int(old.sum()), old.numel())
                    state = optimizer.state[p]
                    if update is None and sparse.method == "set":
                        new = set_update(p.detach(), old.clone(), count, state, generator("set-grow", seed, it, name))
                    else:
                        rule = update or rigl_update
                        new = rule(p.detach(), p.grad.detach().clone(), old.clone(), count, state)
                    mask[name] = _checked(name, new, old, count, p, state)
                    moved[name] = count
                for name, m in mask.items():
                    ever[name] = torch.maximum(ever[name], m)
                from_start = sum(int((m * initial[n].to(device)).sum()) for n, m in mask.items())
                updates.append(MaskUpdate(it, fraction, moved, from_start, sum(int(e.sum()) for e in ever.values())))
                if on_update is not None:
                    on_update(it, model, before, dict(mask), optimizer)
            for name, m in mask.items():
                params[name].grad.mul_(m)
            optimizer.step()
            with torch.no_grad():
                for name, m in mask.items():
                    params[name].mul_(m)
            running += loss.detach()
            steps += 1
            if it == 0:
                curve.append(CurvePoint(0, running.item(), *pending))
            done = it + 1
            if done % training.eval_every == 0 or done == training.iterations:
                curve.append(CurvePoint(done, (running / steps).item(), *measure()))
                running.zero_()
                steps = 0
    seconds = time.perf_counter() - start
    return SparseRun(ArmResult.from_curve(curve), initial, Mask({n: m.cpu() for n, m in mask.items()}), updates,
                     model, seconds)


def sparse_settings(config: ExperimentConfig, sparse: SparseConfig) -> dict:
    """What a sparse run records as its configuration: the run's settings with the method replaced by
    the sparse one, and the sparse settings beside them."""
    return json.loads(json.dumps({**config.to_dict(), **sparse.to_dict()}))


def run_sparse(config: ExperimentConfig, sparse: SparseConfig, out_dir: str | Path | None = None, *,
               data: Splits | None = None, update: Callable | None = None, resume: bool = False,
               overwrite: bool = False, progress: bool = True) -> SparseRun:
    """Train ``config.model`` on ``config.dataset`` sparse from the start (``train_sparse``) from
    ``config.seed``, and save it in ``out_dir`` as a round (module docstring).

    A folder that holds a finished run with these settings is read back with ``resume=True`` instead
    of trained again; ``overwrite=True`` replaces whatever is there. ``update`` is a learner's
    drop-and-grow (RigL's runs only).
    """
    if update is not None and sparse.method != "rigl":
        raise ConfigError(f"a drop-and-grow of your own replaces RigL's: give method rigl, not {sparse.method!r}")
    if data is None:
        data = load_dataset(config.dataset, device=config.device, subset=config.subset).with_eval_size(
            config.eval_images)
    settings = sparse_settings(config, sparse)
    if update is not None:
        settings["update"] = getattr(update, "__qualname__", repr(update))
    if out_dir is None:
        return _train(config, sparse, data, update, progress)
    folder = RunFolder(out_dir)
    with folder.locked():
        saved = folder.read_json(folder.results)
        if saved is not None and not overwrite:
            if saved["config"] != settings:
                raise ConfigError(f"{folder.path} holds another run: replace it with --overwrite (overwrite=True), "
                                  f"or choose another output folder")
            if not resume:
                raise ConfigError(f"{folder.path} already holds this run: read it back with --resume (resume=True), "
                                  f"replace it with --overwrite (overwrite=True), or choose another output folder")
            return load_sparse_run(folder.path)
        folder.clear()
        for name in (INITIAL_MASK, UPDATES):
            (folder.path / name).unlink(missing_ok=True)
        run = _train(config, sparse, data, update, progress, folder)
        result = RoundResult(0, run.mask.weights_remaining(),
                             {n: v["weights_remaining"] for n, v in run.mask.report().items()}, {"ticket": run.result})
        folder.save_round(0, run.mask, run.model.state_dict())
        folder.save(folder.path / INITIAL_MASK, run.initial_mask.state_dict())
        folder.write_json(folder.path / UPDATES, [asdict(u) for u in run.updates])
        folder.write_json(folder.timings, {"round_00": {"ticket": round(run.seconds, 3)}})
        folder.write_json(folder.results, Results(settings, [result]).to_dict())
    return run


def _train(config: ExperimentConfig, sparse: SparseConfig, data: Splits, update: Callable | None, progress: bool,
           folder: RunFolder | None = None) -> SparseRun:
    model = build_model(config.model, data.info.input_shape, data.info.num_classes, seed=config.seed)
    if folder is not None:  # the initial weights under the initial mask: the run's "ticket" as it started
        start = build_model(config.model, data.info.input_shape, data.info.num_classes, seed=config.seed)
        counts = layer_counts(start, sparse.density, sparse.distribution)
        random_sparse_mask(start, counts, generator("sparse-mask", config.seed)).apply_(start)
        folder.save_snapshot(Snapshot.of(start, 0))
    return train_sparse(model, data, config.training, sparse, seed=config.seed, update=update, progress=progress,
                        desc=f"{sparse.method} at {sparse.density:.1%}")


def load_sparse_run(out_dir: str | Path) -> SparseRun:
    """A finished ``run_sparse`` read back from its folder (the network as training left it)."""
    from lthkit.imp import load_trained

    folder = RunFolder(out_dir)
    results = Results.load(folder.results)
    saved = folder.load_round(0)
    updates = [MaskUpdate(**u) for u in folder.read_json(folder.path / UPDATES)]
    initial = Mask.from_state_dict(torch.load(folder.path / INITIAL_MASK, weights_only=True))
    seconds = (folder.read_json(folder.timings) or {}).get("round_00", {}).get("ticket", 0.0)
    return SparseRun(results.rounds[0].arms["ticket"], initial, Mask.from_state_dict(saved["mask"]), updates,
                     load_trained(out_dir, 0), seconds)
