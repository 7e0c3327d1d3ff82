"""One configuration object for a run, checked once, before any work starts.

The command line and the notebooks both build an ``ExperimentConfig`` (``make_config``); the
IMP loop reads it and nothing reaches back. It holds what one network's training needs as a
``TrainConfig`` (``config.training``), beside what IMP adds: rounds, pruning, rewinding, controls.
Every knob left unset takes the paper's value for the chosen model (``lthkit.models.MODELS``,
named by these fields), and ``departures_from_paper`` lists each one that differs, so a shorter
classroom run never silently passes for the paper's setup.

``results.json`` records a configuration as one flat dict of settings (``to_dict``; the
training settings beside the others, the data order's seed being the run's seed), the form
runs have always recorded, so older runs still resume and compare.
"""

from __future__ import annotations

import math
from dataclasses import Field, asdict, dataclass, field, fields

from lthkit.catalogue import DATASETS, dataset_info
from lthkit.data import iterations_per_epoch
from lthkit.masks import check_rate
from lthkit.models import MODELS, model_spec
from lthkit.prune_at_init import SCORES, STEPS
from lthkit.settings import ConfigError, choice, flag, number, option, whole
from lthkit.train import TrainConfig, resolve_device

CONTROLS = ("reinit", "random")  # the default controls; "inverted" needs a score at initialisation
ALL_CONTROLS = CONTROLS + ("signs", "inverted")
RETRAIN = ("rewind", "lr-rewind", "finetune")
METHODS = ("imp",) + tuple(SCORES)  # how a round's mask is found: IMP, or a score at initialisation
KINDS = ("conv", "fc", "embedding", "attention", "mlp", "output")


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


def parse_controls(text: str) -> tuple[str, ...]:
    """``"reinit,random"`` (or ``""``, none) to a tuple."""
    return tuple(c.strip() for c in text.split(",") if c.strip())


@dataclass(frozen=True)
class ExperimentConfig:
    """Every setting of one run. Build it with ``make_config``, which fills in the paper's values;
    the fields are checked here, however the object is made. ``to_dict`` is what ``results.json``
    records and what ``--resume`` compares."""

    training: TrainConfig
    dataset: str = field(default="mnist", metadata=option(
        "dataset (default: the paper's for the model: mnist for lenet300, cifar10 for the others)",
        choices=tuple(DATASETS)))
    model: str = field(default="lenet300", metadata=option("network (default: lenet300)", choices=tuple(MODELS)))
    rounds: int = field(default=15, metadata=option(
        "pruning rounds after the dense round 0 (default: 15)", imp_only=True))
    epochs: float | None = field(default=None, metadata=option(
        "passes over the training set per training run, instead of --iterations", group="length"))
    prune_rates: dict[str, float] = field(default_factory=dict, metadata=option(
        "fraction of surviving weights removed per round: one rate (0.2) or per kind "
        "(conv=0.15,fc=0.2,output=0.1); default: the paper's for the model",
        flag="--prune-rate", parse=parse_prune_rates, imp_only=True))
    global_pruning: bool = field(default=False, metadata=option(
        "prune by magnitude across all layers at once instead of layer by layer "
        "(default: the paper's, layer by layer except for resnet20)", flag="--global", imp_only=True))
    rewind_iteration: int = field(default=0, metadata=option(
        "rewind survivors to their weights after this many iterations (default: 0, initialisation)", imp_only=True))
    retrain: str = field(default="rewind", metadata=option(
        "what each round retrains from: rewind (weights and schedule to --rewind-iteration, the lottery "
        "ticket), lr-rewind (trained weights, schedule from --rewind-iteration) or finetune (trained "
        "weights at the final learning rate); default: rewind", choices=RETRAIN, imp_only=True))
    controls: tuple[str, ...] = field(default=CONTROLS, metadata=option(
        "comma-separated controls to train each round: reinit (the mask on fresh weights), random (as many "
        "weights per layer at random places), signs (reinit's fresh magnitudes with the rewound weights' "
        "signs, Zhou et al. 2019), inverted (a score's lowest weights kept instead of its "
        "highest; --method other than imp), or '' (default: reinit,random)",
        parse=parse_controls, imp_only=True))
    method: str = field(default="imp", metadata=option(
        "how each round's mask is found: imp (train, prune the smallest weights, rewind: the lottery "
        "ticket), or before any training, by a score of the initial weights pruned in one go to the "
        "sparsity IMP reaches that round (per layer, or in total with --global): magnitude, snip (Lee "
        "et al. 2019), grasp (Wang et al. 2020), synflow (Tanaka et al. 2020); default: imp",
        choices=METHODS, imp_only=True))
    score_images: int = field(default=100, metadata=option(
        "training images SNIP and GraSP score the weights on (default: 100, as Lee et al.)", imp_only=True))
    score_steps: int = field(default=1, metadata=option(
        "steps of the exponential schedule a score prunes in, rescoring each time (default: 100 for "
        "synflow, as Tanaka et al.; 1, one shot, for the others)", imp_only=True))
    seed: int = field(default=0, metadata=option(
        "seed of initialisation, data order and controls (default: 0)"))
    subset: int | None = field(default=None, metadata=option(
        "train on a seeded class-balanced sample of this many images (default: all)"))
    eval_images: int | None = field(default=None, metadata=option(
        "measure on the first N validation and N test images (default: all; fewer is faster, noisier)"))
    device: str = field(default="cpu", metadata=option(
        "auto (CUDA, then MPS, then CPU), cpu, cuda or mps (default: auto)"))  # recorded resolved

    def __post_init__(self):
        set_ = object.__setattr__  # frozen: each setting is stored in its checked form
        if not isinstance(self.training, TrainConfig):
            raise ConfigError(f"training must be a TrainConfig, got {type(self.training).__name__}")
        choice("dataset", self.dataset, DATASETS)
        paper = model_spec(choice("model", self.model, MODELS)).paper
        whole("rounds", self.rounds, 0, what=" of pruning rounds")
        whole("seed", self.seed, None)
        if self.training.data_seed != self.seed:
            raise ConfigError(f"training.data_seed ({self.training.data_seed}) must be the run's seed ({self.seed}): "
                              f"build the configuration with make_config")
        info = dataset_info(self.dataset)
        if self.subset is not None and not info.num_classes <= whole("subset", self.subset) <= info.train_size:
            raise ConfigError(
                f"subset {self.subset} is out of range: give between {info.num_classes} and {info.train_size} "
                f"training images for {self.dataset}, or leave it unset to use all")
        if self.epochs is not None:
            number("epochs", self.epochs, positive=True)
            if self.training.iterations != epochs_to_iterations(self.epochs, self.train_size, self.training.batch_size):
                raise ConfigError(f"{self.epochs} epochs are not {self.training.iterations} iterations: give one of them")
        if self.eval_images is not None:
            whole("eval_images", self.eval_images)
        if not isinstance(self.prune_rates, dict) or set(self.prune_rates) != set(paper.prune_rates):
            raise ConfigError(f"prune_rates must give a rate for each kind of {self.model}'s layers "
                              f"({', '.join(paper.prune_rates)}), got {self.prune_rates!r}")
        try:
            set_(self, "prune_rates", {k: check_rate(v, f"pruning rate for {k} layers")
                                       for k, v in self.prune_rates.items()})
        except ValueError as err:
            raise ConfigError(str(err)) from None
        if flag("global_pruning", self.global_pruning) and len(set(self.prune_rates.values())) > 1:
            raise ConfigError("global pruning takes one rate for every layer, such as --prune-rate 0.2")
        whole("rewind_iteration", self.rewind_iteration, 0, what=" of iterations")
        if self.rewind_iteration >= self.training.iterations:
            raise ConfigError(
                f"rewind_iteration {self.rewind_iteration} is past the end of training ({self.training.iterations} "
                f"iterations): rewind to an earlier iteration, or train for longer")
        choice("retrain", self.retrain, RETRAIN)
        controls = tuple(self.controls) if isinstance(self.controls, (tuple, list)) else None
        bad = [c for c in controls or () if c not in ALL_CONTROLS]
        if controls is None or bad:
            raise ConfigError(f"unknown controls {bad or self.controls!r}: choose from {', '.join(ALL_CONTROLS)} "
                              f"(or none)")
        if len(set(controls)) != len(controls):
            raise ConfigError(f"controls {list(controls)} name one twice")
        if controls and self.retrain != "rewind":
            raise ConfigError(f"the controls ask whether the rewound weights matter, so they need retrain 'rewind', "
                              f"not {self.retrain!r}: pass controls=() (--controls '') with {self.retrain}")
        set_(self, "controls", controls)
        at_init = choice("method", self.method, METHODS) != "imp"
        whole("score_images", self.score_images)
        whole("score_steps", self.score_steps)
        if "inverted" in controls and not at_init:
            raise ConfigError("the inverted control keeps a score's lowest weights, so it needs a score at "
                              "initialisation: give --method magnitude, snip, grasp or synflow, or drop inverted")
        if at_init and (self.rewind_iteration != 0 or self.retrain != "rewind"):
            raise ConfigError(f"method {self.method} prunes at initialisation and trains from there: give "
                              f"rewind_iteration 0 and retrain 'rewind', not {self.rewind_iteration} and "
                              f"{self.retrain!r}")
        if not isinstance(self.device, str):
            raise ConfigError(f"device must be a name such as cpu or cuda, got {self.device!r}")

    def settings(self) -> dict[str, object]:
        """Every setting by name, the training ones beside the others (the data order's seed is
        the run's seed): what ``make_config`` takes and ``to_dict`` records."""
        ours = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "training"}
        return {**ours, **{f.name: getattr(self.training, f.name) for f in fields(TrainConfig) if f.name != "data_seed"}}

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else dict(v) if isinstance(v, dict) else v
                for k, v in self.settings().items()}

    @classmethod
    def from_dict(cls, d: dict) -> "ExperimentConfig":
        return make_config(**d)

    @property
    def train_size(self) -> int:
        return self.subset if self.subset is not None else dataset_info(self.dataset).train_size

    def departures_from_paper(self) -> dict[str, tuple[object, object]]:
        """Each setting that differs from the paper's for this model: name -> (ours, paper's).

        The paper's is ``make_config(model=...)`` with nothing else set; what is not a
        hyperparameter (the seed, the device, how many rounds, which controls) is not compared,
        nor SGD's momentum when either run trains with Adam."""
        ours, paper = self.settings(), make_config(model=self.model, device=self.device).settings()
        skip = set(RUN_SETTINGS) | ({"momentum"} if "adam" in (self.training.optimizer, paper["optimizer"]) else set())
        return {k: (v, paper[k]) for k, v in ours.items() if k not in skip and v != paper[k]}


RUN_SETTINGS = ("rounds", "controls", "seed", "device", "epochs",  # what a run is, not how it trains
                "score_images", "score_steps")  # and what only a method the paper did not have uses


def setting_fields() -> tuple[Field, ...]:
    """The fields ``make_config`` takes, in ``to_dict``'s order: the run's, then its training's
    (the training's data seed is the run's seed)."""
    return tuple(f for f in fields(ExperimentConfig) if f.name != "training") + tuple(
        f for f in fields(TrainConfig) if f.name != "data_seed")


def setting_names() -> tuple[str, ...]:
    return tuple(f.name for f in setting_fields())


TEXT_TYPES = {"int": int, "int | None": int, "float": float, "float | None": float, "str": str}
"""How a setting without a parser of its own is read from text, by the type of its field."""
TRUE, FALSE = ("true", "yes", "1"), ("false", "no", "0")


def option_name(f: Field) -> str:
    """A setting's command-line option without its dashes: "rewind-iteration", "prune-rate", "global"."""
    opt = f.metadata["option"]
    return (opt.flag or "--" + f.name.replace("_", "-")).lstrip("-")


def read_setting(f: Field, text: str):
    """The value of setting ``f`` written as ``text``, read as its command-line option reads it (a
    yes/no setting from true or false)."""
    opt, name = f.metadata["option"], option_name(f)
    if f.type in ("bool", "bool | None"):
        if text.strip().lower() not in TRUE + FALSE:
            raise ConfigError(f"{name} is true or false, got {text!r}")
        return text.strip().lower() in TRUE
    try:
        value = opt.parse(text) if opt.parse else TEXT_TYPES[f.type](text)
    except ValueError as err:
        raise ConfigError(f"{name}: {err}") from None
    if opt.choices and value not in opt.choices:
        raise ConfigError(f"{name} must be one of {', '.join(opt.choices)}, got {text!r}")
    return value


def settings_from_text(given: dict[str, str]) -> dict:
    """``make_config``'s settings from {option name: text} as ``lthkit imp`` takes them
    (``{"rewind-iteration": "500", "global": "true"}``); an unknown name is refused with the known ones."""
    options = {option_name(f): f for f in setting_fields() if "option" in f.metadata}
    unknown = sorted(set(given) - set(options))
    if unknown:
        raise ConfigError(f"lthkit imp has no setting {', '.join(unknown)}; its settings are {', '.join(options)}")
    return {options[name].name: read_setting(options[name], text) for name, text in given.items()}


def epochs_to_iterations(epochs: float, train_size: int, batch_size: int) -> int:
    return max(1, round(epochs * iterations_per_epoch(train_size, batch_size)))


def _device(name: object) -> str:
    try:
        return str(resolve_device(str(name)))
    except (RuntimeError, ValueError) as err:
        raise ConfigError(f"device {name!r} cannot be used ({err}): give auto, cpu, cuda or mps") from None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _prune_rates(given: dict | None, model: str, global_pruning: object) -> dict[str, float]:
    """The rate of each kind of ``model``'s layers: the ones given (every kind from one number,
    or some kinds), the paper's for the rest; with global pruning, one rate for all."""
    paper = model_spec(model).paper.prune_rates
    rates = dict(given or {})
    bad_kinds = set(rates) - set(KINDS)
    if bad_kinds:
        raise ConfigError(f"unknown layer kinds {sorted(bad_kinds)} in prune rates: use {', '.join(KINDS)}")
    absent = set(rates) - set(paper)
    if absent and set(rates) != set(KINDS):
        raise ConfigError(f"{model} has no {', '.join(sorted(absent))} layers: give rates for {', '.join(paper)}")
    if global_pruning is True:
        if len(set(rates.values())) > 1:
            raise ConfigError("global pruning takes one rate for every layer, such as --prune-rate 0.2")
        return {k: next(iter(rates.values()), 0.2) for k in paper}
    return {k: rates.get(k, rate) for k, rate in paper.items()}


def make_config(**settings) -> ExperimentConfig:
    """A configuration from named settings (``setting_names``; None means unset), each unset one
    the paper's value for the model (``lthkit.models.PaperSetup``, whose fields are settings).

    ``epochs`` (passes over the training set) may be given instead of ``iterations``; it is
    converted with the batch size, so the config records both. Milestones left unset are the
    paper's, scaled to a shorter or longer run.
    """
    settings = {k: v for k, v in settings.items() if v is not None or k == "subset"}
    known = setting_names()
    unknown = set(settings) - set(known)
    if unknown:
        raise ConfigError(f"unknown settings {sorted(unknown)}: known ones are {sorted(known)}")
    model = choice("model", settings.get("model", "lenet300"), MODELS)
    paper = asdict(model_spec(model).paper)
    defaults = {f.name: f.default for f in fields(ExperimentConfig) if f.name != "training"}
    defaults.update({f.name: f.default for f in fields(TrainConfig) if f.name != "data_seed"}, controls=CONTROLS)
    s = {name: settings.get(name, paper.get(name, defaults.get(name))) for name in known}

    info = dataset_info(choice("dataset", s["dataset"], DATASETS))
    epochs, batch_size, subset = s["epochs"], s["batch_size"], s["subset"]
    if isinstance(epochs, (int, float)) and not isinstance(epochs, bool) and 0 < epochs < math.inf \
            and _is_int(batch_size) and batch_size > 0 \
            and (subset is None or _is_int(subset) and subset > 0):  # else the checks below say what is wrong
        from_epochs = epochs_to_iterations(epochs, subset or info.train_size, batch_size)
        if settings.get("iterations", from_epochs) != from_epochs:
            raise ConfigError(f"give epochs or iterations, not both ({epochs} epochs are {from_epochs} iterations)")
        s["iterations"] = from_epochs
    if "milestones" not in settings and paper["milestones"] and _is_int(s["iterations"]) \
            and s["iterations"] != paper["iterations"]:
        s["milestones"] = tuple(sorted({round(m * s["iterations"] / paper["iterations"]) for m in paper["milestones"]
                                        if m * s["iterations"] >= paper["iterations"]}))
    if isinstance(s["milestones"], list):
        s["milestones"] = tuple(s["milestones"])
    if isinstance(s["controls"], str):
        s["controls"] = parse_controls(s["controls"])
    s["prune_rates"] = _prune_rates(s["prune_rates"], model, s["global_pruning"])
    if "score_steps" not in settings:
        s["score_steps"] = STEPS.get(s["method"], 1)
    s["device"] = _device(settings.get("device", "auto"))
    train_names = {f.name for f in fields(TrainConfig)}
    data_seed = s["seed"] if _is_int(s["seed"]) else 0  # a wrong seed is reported as the seed's, below
    training = TrainConfig(data_seed=data_seed, **{k: v for k, v in s.items() if k in train_names})
    return ExperimentConfig(training=training, **{k: v for k, v in s.items() if k not in train_names})
