"""One configuration object for a run, checked before any work starts.

The command line and the notebooks both build an ``ExperimentConfig``; the IMP loop reads
it and nothing reaches back. Every knob left unset takes the paper's value for the chosen
model (``lthkit.models.MODELS``), and ``departures_from_paper`` lists each one that differs,
so a shorter classroom run never silently passes for the paper's setup.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

from lthkit.catalogue import DATASETS, dataset_info
from lthkit.data import iterations_per_epoch
from lthkit.masks import check_rate
from lthkit.models import MODELS, model_spec
from lthkit.train import OPTIMIZERS, TrainConfig, resolve_device

CONTROLS = ("reinit", "random")
RETRAIN = ("rewind", "lr-rewind", "finetune")
KINDS = ("conv", "fc", "output")


class ConfigError(ValueError):
    """A setting that cannot work; the message says what to give instead."""


@dataclass(frozen=True)
class ExperimentConfig:
    """Every setting of one run. Build it with ``make_config``, which fills and checks each field;
    ``to_dict`` is what ``results.json`` records and what ``--resume`` compares."""

    dataset: str = "mnist"
    model: str = "lenet300"
    rounds: int = 15
    iterations: int = 0
    epochs: float | None = None
    batch_size: int = 0
    lr: float = 0.0
    optimizer: str = ""
    prune_rates: dict[str, float] = field(default_factory=dict)
    global_pruning: bool | None = None
    rewind_iteration: int = 0
    retrain: str = "rewind"
    momentum: float | None = None
    weight_decay: float | None = None
    warmup: int | None = None
    milestones: tuple[int, ...] | None = None
    augment: bool | None = None
    controls: tuple[str, ...] = CONTROLS
    seed: int = 0
    subset: int | None = None
    eval_every: int = 100
    eval_images: int | None = None  # validation and test images measured; None: all of them
    device: str = "cpu"  # resolved: "auto" becomes the device actually used

    def to_dict(self) -> dict:
        d = asdict(self)
        d["controls"] = list(self.controls)
        d["milestones"] = list(self.milestones)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ExperimentConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"unknown settings {sorted(unknown)}: known ones are {sorted(known)}")
        return make_config(**d)

    def train_config(self) -> TrainConfig:
        return TrainConfig(
            iterations=self.iterations, batch_size=self.batch_size, lr=self.lr, optimizer=self.optimizer,
            momentum=self.momentum, weight_decay=self.weight_decay, eval_every=self.eval_every,
            data_seed=self.seed, warmup=self.warmup, milestones=self.milestones, augment=self.augment,
        )

    @property
    def train_size(self) -> int:
        return self.subset if self.subset is not None else dataset_info(self.dataset).train_size

    def departures_from_paper(self) -> dict[str, tuple[object, object]]:
        """Each setting that differs from Frankle & Carbin's for this model: name -> (ours, paper's)."""
        paper = model_spec(self.model).paper
        theirs = {
            "dataset": paper.dataset, "optimizer": paper.optimizer, "lr": paper.lr, "batch_size": paper.batch_size,
            "iterations": paper.iterations, "prune_rates": paper.prune_rates,
            "global_pruning": paper.global_pruning, "weight_decay": paper.weight_decay, "warmup": paper.warmup,
            "milestones": paper.milestones, "augment": paper.augment,
            "rewind_iteration": 0, "retrain": "rewind", "subset": None, "eval_every": 100,
            "eval_images": None,
        }
        if self.optimizer == "sgd" and paper.optimizer == "sgd":
            theirs["momentum"] = paper.momentum
        return {k: (getattr(self, k), v) for k, v in theirs.items() if getattr(self, k) != v}


def _positive_int(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"{name} must be a positive whole number, got {value!r}")
    return value


def _device(name: object) -> str:
    try:
        return str(resolve_device(str(name)))
    except (RuntimeError, ValueError) as err:
        raise ConfigError(f"device {name!r} cannot be used ({err}): give auto, cpu, cuda or mps") from None


def parse_prune_rates(text: str) -> dict[str, float]:
    """``"0.2"`` (every kind) or ``"conv=0.15,fc=0.2,output=0.1"`` (per kind) to a dict."""
    text = text.strip()
    try:
        if "=" not in text:
            rate = float(text)
            return {k: rate for k in KINDS}
        rates = {}
        for part in text.split(","):
            kind, _, value = part.partition("=")
            rates[kind.strip()] = float(value)
    except ValueError:
        raise ConfigError(
            f"cannot read prune rate {text!r}: give one number such as 0.2, or kinds such as "
            f"conv=0.15,fc=0.2,output=0.1"
        ) from None
    return rates


def make_config(**settings) -> ExperimentConfig:
    """Build and check a configuration; unset knobs take the paper's values for the model.

    ``epochs`` (a number of passes over the training set) may be given instead of
    ``iterations``; it is converted with the batch size, so the config always records both.
    """
    settings = {k: v for k, v in settings.items() if v is not None or k == "subset"}
    known = {f.name for f in fields(ExperimentConfig)}
    unknown = set(settings) - known
    if unknown:
        raise ConfigError(f"unknown settings {sorted(unknown)}: known ones are {sorted(known)}")
    model = settings.get("model", "lenet300")
    if model not in MODELS:
        raise ConfigError(f"unknown model {model!r}: choose one of {', '.join(MODELS)}")
    paper = model_spec(model).paper
    dataset = settings.get("dataset", paper.dataset)
    if dataset not in DATASETS:
        raise ConfigError(f"unknown dataset {dataset!r}: choose one of {', '.join(DATASETS)}")

    rounds = settings.get("rounds", 15)
    if not isinstance(rounds, int) or isinstance(rounds, bool) or rounds < 0:
        raise ConfigError(f"rounds must be a whole number of pruning rounds, 0 or more, got {rounds!r}")
    batch_size = _positive_int("batch_size", settings.get("batch_size", paper.batch_size))
    optimizer = settings.get("optimizer", paper.optimizer)
    if optimizer not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {optimizer!r}: choose one of {', '.join(OPTIMIZERS)}")
    lr = settings.get("lr", paper.lr)
    if not isinstance(lr, (int, float)) or isinstance(lr, bool) or not lr > 0 or math.isinf(lr):
        raise ConfigError(f"lr must be a positive number, got {lr!r}")

    subset = settings.get("subset")
    info = dataset_info(dataset)
    if subset is not None:
        _positive_int("subset", subset)
        if not info.num_classes <= subset <= info.train_size:
            raise ConfigError(
                f"subset {subset} is out of range: give between {info.num_classes} and {info.train_size} "
                f"training images for {dataset}, or leave it unset to use all"
            )
    train_size = subset if subset is not None else info.train_size

    epochs = settings.get("epochs")
    iterations = settings.get("iterations")
    if epochs is not None:
        if not isinstance(epochs, (int, float)) or isinstance(epochs, bool) or not 0 < epochs < math.inf:
            raise ConfigError(f"epochs must be a positive number, got {epochs!r}")
        from_epochs = max(1, round(epochs * iterations_per_epoch(train_size, batch_size)))
        if iterations is not None and iterations != from_epochs:
            raise ConfigError(f"give epochs or iterations, not both ({epochs} epochs are {from_epochs} iterations)")
        iterations = from_epochs
    elif iterations is None:
        iterations = paper.iterations
    _positive_int("iterations", iterations)

    rates = dict(settings.get("prune_rates") or {})
    bad_kinds = set(rates) - set(KINDS)
    if bad_kinds:
        raise ConfigError(f"unknown layer kinds {sorted(bad_kinds)} in prune rates: use {', '.join(KINDS)}")
    absent = set(rates) - set(paper.prune_rates)
    if absent and set(rates) != set(KINDS):
        raise ConfigError(f"{model} has no {', '.join(sorted(absent))} layers: give rates for {', '.join(paper.prune_rates)}")
    global_pruning = settings.get("global_pruning", paper.global_pruning)
    if not isinstance(global_pruning, bool):
        raise ConfigError(f"global_pruning must be True or False, got {global_pruning!r}")
    if global_pruning:
        if len(set(rates.values())) > 1:
            raise ConfigError("global pruning takes one rate for every layer, such as --prune-rate 0.2")
        rate = next(iter(rates.values()), 0.2)
        rates = {k: rate for k in paper.prune_rates}
    else:
        rates = {k: rates.get(k, paper_rate) for k, paper_rate in paper.prune_rates.items()}
    try:
        rates = {k: check_rate(v, f"pruning rate for {k} layers") for k, v in rates.items()}
    except ValueError as err:
        raise ConfigError(str(err)) from None

    rewind_iteration = settings.get("rewind_iteration", 0)
    if not isinstance(rewind_iteration, int) or isinstance(rewind_iteration, bool) or rewind_iteration < 0:
        raise ConfigError(f"rewind_iteration must be a whole number of iterations, 0 or more, got {rewind_iteration!r}")
    if rewind_iteration >= iterations:
        raise ConfigError(
            f"rewind_iteration {rewind_iteration} is past the end of training ({iterations} iterations): "
            f"rewind to an earlier iteration, or train for longer"
        )

    retrain = settings.get("retrain", "rewind")
    if retrain not in RETRAIN:
        raise ConfigError(f"unknown retrain {retrain!r}: choose one of {', '.join(RETRAIN)}")
    momentum = settings.get("momentum", paper.momentum)
    weight_decay = settings.get("weight_decay", paper.weight_decay)
    for name, value in (("momentum", momentum), ("weight_decay", weight_decay)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value < math.inf:
            raise ConfigError(f"{name} must be a number, 0 or more, got {value!r}")
    warmup = settings.get("warmup", paper.warmup)
    if not isinstance(warmup, int) or isinstance(warmup, bool) or not 0 <= warmup < iterations:
        raise ConfigError(f"warmup must be a whole number of iterations in [0, {iterations}), got {warmup!r}")
    milestones = tuple(settings.get("milestones", paper.milestones))
    if not all(isinstance(m, int) and 0 < m for m in milestones) or list(milestones) != sorted(set(milestones)):
        raise ConfigError(f"milestones must be increasing iterations, such as 32000,48000, got {list(milestones)}")
    if milestones and "milestones" not in settings and iterations != paper.iterations:
        milestones = tuple(sorted({round(m * iterations / paper.iterations) for m in milestones
                                   if m * iterations >= paper.iterations}))
    augment = settings.get("augment", paper.augment)
    if not isinstance(augment, bool):
        raise ConfigError(f"augment must be True or False, got {augment!r}")

    controls = settings.get("controls", CONTROLS)
    if isinstance(controls, str):
        controls = tuple(c.strip() for c in controls.split(",") if c.strip())
    controls = tuple(controls)
    bad = [c for c in controls if c not in CONTROLS]
    if bad:
        raise ConfigError(f"unknown controls {bad}: choose from {', '.join(CONTROLS)} (or none)")
    if len(set(controls)) != len(controls):
        raise ConfigError(f"controls {list(controls)} name one twice")
    if controls and retrain != "rewind":
        raise ConfigError(f"the controls ask whether the rewound weights matter, so they need retrain 'rewind', "
                          f"not {retrain!r}: pass controls=() (--controls '') with {retrain}")

    seed = settings.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ConfigError(f"seed must be a whole number, got {seed!r}")
    eval_every = _positive_int("eval_every", settings.get("eval_every", 100))
    eval_images = settings.get("eval_images")
    if eval_images is not None:
        _positive_int("eval_images", eval_images)

    return ExperimentConfig(
        dataset=dataset, model=model, rounds=rounds, iterations=iterations, epochs=epochs,
        batch_size=batch_size, lr=float(lr), optimizer=optimizer, prune_rates=rates,
        global_pruning=global_pruning, rewind_iteration=rewind_iteration, retrain=retrain,
        momentum=float(momentum), weight_decay=float(weight_decay), warmup=warmup, milestones=milestones,
        augment=augment, controls=controls,
        seed=seed, subset=subset, eval_every=eval_every, eval_images=eval_images, device=_device(settings.get("device", "auto")),
    )
