"""What every notebook of the course shares: budgets, parameter checks, saving, the environment.

A notebook's ``parameters`` cell holds a ``budget`` and a few knobs left at ``None``;
``notebook_settings`` checks what papermill or the learner put there and fills each ``None``
from the budget:

- ``test``: seconds, for CI under nbval; shows the mechanics, not the effect;
- ``classroom``: minutes on a 2-core laptop CPU; shows the effect on real MNIST;
- ``paper``: Frankle & Carbin's own setup (50,000 iterations per training); for a GPU.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import replace
from pathlib import Path

import torch

from lthkit.course import progress
from lthkit.course.fallback import yours  # noqa: F401  (course.yours: the learner's function, or lthkit's)
from lthkit.results import Results, print_arm

BUDGET_NAMES = ("test", "classroom", "paper")

PAPER_SEEDS = (0, 1, 2, 3, 4)
"""The runs a paper-budget notebook makes of its IMP, as seeds after the notebook's ``seed``: Frankle &
Carbin average five trials. They train together (``lthkit.imp.run_imp_seeds``), stacked on a GPU."""

# Per notebook and budget: the knobs the parameters cell may override (tuples are fixed by the budget;
# seeds: the seeds of a notebook's IMP runs, counted from its seed parameter).
BUDGETS: dict[str, dict[str, dict]] = {
    "00": {
        "test": {"iterations": 50, "cifar_iterations": 2},
        "classroom": {"iterations": 300, "cifar_iterations": 5},
        "paper": {"iterations": 300, "cifar_iterations": 5},
    },
    "01": {
        "test": {"subset": 1000, "iterations": 200, "eval_every": 50},
        "classroom": {"subset": None, "iterations": 9170, "eval_every": 100},
        "paper": {"subset": None, "iterations": 50000, "eval_every": 100},
    },
    "02": {
        "test": {"subset": 1000, "iterations": 200, "eval_every": 50},
        "classroom": {"subset": None, "iterations": 4585, "eval_every": 100},
        "paper": {"subset": None, "iterations": 50000, "eval_every": 100},
    },
    "03": {
        "test": {"subset": 1000, "iterations": 100, "rounds": 3, "eval_every": 50,
                 "seeds": (0,), "eval_images": 1000},
        "classroom": {"subset": None, "iterations": 2751, "rounds": 15, "eval_every": 100,
                      "seeds": (0,), "eval_images": None},
        "paper": {"subset": None, "iterations": 50000, "rounds": 20, "eval_every": 100,
                  "seeds": PAPER_SEEDS, "eval_images": None},
    },
    "04": {
        "test": {"subset": 1000, "iterations": 100, "rounds": 3, "eval_every": 50,
                 "seeds": (0,), "eval_images": 1000},
        "classroom": {"subset": None, "iterations": 2751, "rounds": 15, "eval_every": 100,
                      "seeds": (0,), "eval_images": None},
        "paper": {"subset": None, "iterations": 50000, "rounds": 20, "eval_every": 100,
                  "seeds": PAPER_SEEDS, "eval_images": None},
    },
    # Pruning at initialisation against IMP, LeNet-300-100 on MNIST: every method at the sparsities IMP
    # reaches, round by round (rates per round fixed by the notebook, 40% of the fully-connected weights).
    "07": {
        "test": {"subset": 1000, "iterations": 100, "rounds": 2, "eval_every": 50, "eval_images": 1000},
        "classroom": {"subset": None, "iterations": 1834, "rounds": 8, "eval_every": 100, "eval_images": None},
        "paper": {"subset": None, "iterations": 50000, "rounds": 12, "eval_every": 100, "eval_images": None},
    },
    # Masks over frozen weights (Zhou et al., edge-popup) and Zhou et al.'s sign control in IMP, LeNet-300-100
    # on MNIST. iterations: each IMP training; mask_iterations: each supermask's (batches of 250);
    # densities: the fractions of each layer edge-popup keeps, fixed by the budget.
    "08": {
        "test": {"subset": 1000, "iterations": 100, "mask_iterations": 40, "rounds": 2, "eval_every": 20,
                 "densities": (0.1, 0.5), "eval_images": 1000},
        "classroom": {"subset": None, "iterations": 1834, "mask_iterations": 1100, "rounds": 8, "eval_every": 100,
                      "densities": (0.05, 0.1, 0.3, 0.5, 0.7, 0.9), "eval_images": None},
        "paper": {"subset": None, "iterations": 50000, "mask_iterations": 22000, "rounds": 12, "eval_every": 100,
                  "densities": (0.05, 0.1, 0.3, 0.5, 0.7, 0.9), "eval_images": None},
    },
    # The small vision transformer on MNIST: IMP rewinding to 0 (with the reinit and random controls) and to
    # iteration k (rewind_iteration; the ticket alone), 40% of each kind's surviving weights a round, 20% of the head's.
    "09": {
        "test": {"subset": 1000, "iterations": 40, "rounds": 1, "eval_every": 20, "rewind_iteration": 10,
                 "eval_images": 500},
        "classroom": {"subset": None, "iterations": 1834, "rounds": 4, "eval_every": 200, "rewind_iteration": 200,
                      "eval_images": None},
        "paper": {"subset": None, "iterations": 9170, "rounds": 8, "eval_every": 100, "rewind_iteration": 500,
                  "eval_images": None},
    },
    # Shipping a ticket: LeNet-300-100 on MNIST, Conv-2 and ResNet-20 on CIFAR-10, each pruned to its paper's
    # ticket sparsity in ticket_rounds rounds (models, in that order; the test budget leaves Conv-2 out: its
    # paths are ResNet-20's, and its 17 MB cost the suite time), ResNet-20 rewound to rewind_iteration;
    # channel_keeps: the channel-pruned networks; table_images: test images the table measures on (None: all);
    # timing: (medians per batch size, seconds each) for torch.utils.benchmark.
    "10": {
        "test": {"subset": 500, "iterations": 20, "cifar_iterations": 4, "eval_every": 10, "eval_images": 200,
                 "table_images": 200, "rewind_iteration": 2, "models": ("lenet300", "resnet20"),
                 "ticket_rounds": (1, 1), "channel_keeps": (0.5,), "timing": (1, 0.01)},
        "classroom": {"subset": None, "iterations": 1834, "cifar_iterations": 300, "eval_every": 100,
                      "eval_images": 1000, "table_images": 2000, "rewind_iteration": 30,
                      "models": ("lenet300", "conv2", "resnet20"), "ticket_rounds": (5, 2, 1),
                      "channel_keeps": (0.5, 0.25), "timing": (3, 0.2)},
        "paper": {"subset": None, "iterations": 50000, "cifar_iterations": None, "eval_every": 1000,
                  "eval_images": None, "table_images": None, "rewind_iteration": 2000,
                  "models": ("lenet300", "conv2", "resnet20"), "ticket_rounds": (15, 11, 8),
                  "channel_keeps": (0.5, 0.25), "timing": (5, 0.5)},
    },
    # Tickets that travel, LeNet-300-100: IMP (no controls; 07's rates, 40% of the fully-connected weights a round) on
    # MNIST with Adam, on Fashion-MNIST with Adam and on MNIST with SGD, then four moves (MNIST to Fashion-MNIST and back,
    # Adam to SGD and back), each round's moved ticket beside the random and reinit controls.
    "11": {
        "test": {"subset": 1000, "iterations": 40, "rounds": 2, "eval_every": 20, "eval_images": 1000},
        "classroom": {"subset": None, "iterations": 1834, "rounds": 4, "eval_every": 200, "eval_images": None},
        "paper": {"subset": None, "iterations": 50000, "rounds": 8, "eval_every": 1000, "eval_images": None},
    },
    # Sparse from the start, LeNet-300-100 on MNIST: IMP's ticket after `rounds` rounds (07's rates, 40% of the
    # fully-connected weights a round), then at its sparsity SynFlow at initialisation, a static random mask, SET and
    # RigL (one training each; update_every: steps between mask updates), and RigL trained as long as IMP's rounds.
    "12": {
        "test": {"subset": 1000, "iterations": 100, "rounds": 2, "eval_every": 50,
                 "update_every": 20, "eval_images": 1000},
        "classroom": {"subset": None, "iterations": 1834, "rounds": 8, "eval_every": 100,
                      "update_every": 100, "eval_images": None},
        "paper": {"subset": None, "iterations": 50000, "rounds": 12, "eval_every": 100,
                  "update_every": 100, "eval_images": None},
    },
    # Conv-2/4/6 on CIFAR-10. iterations None: the paper's for each network (20k, 25k, 30k).
    # models and controls are fixed by the budget: on a CPU only Conv-2 fits, with the reinit control; the test
    # budget runs Conv-4 beside it (Conv-6 is the same code at twice Conv-4's cost).
    "05": {
        "test": {"subset": 200, "iterations": 6, "rounds": 1, "eval_every": 6, "eval_images": 200,
                 "models": ("conv2", "conv4"), "controls": ("reinit",)},
        "classroom": {"subset": None, "iterations": 300, "rounds": 6, "eval_every": 100, "eval_images": 1000,
                      "models": ("conv2",), "controls": ("reinit",)},
        "paper": {"subset": None, "iterations": None, "rounds": 20, "eval_every": 100, "eval_images": None,
                  "models": ("conv2", "conv4", "conv6"), "controls": ("reinit", "random")},
    },
    # ResNet-20 on CIFAR-10 (Frankle et al. 2020). iterations and batch_size None: the paper's (63k, 128).
    # rewind_points are the iterations the instability analysis starts its pairs of copies from.
    "06": {
        "test": {"subset": 200, "iterations": 8, "rounds": 1, "batch_size": 32, "eval_every": 4,
                 "eval_images": 100, "rewind_iteration": 2, "rewind_points": (0, 2), "bn_images": 100},
        "classroom": {"subset": None, "iterations": 300, "rounds": 1, "batch_size": None, "eval_every": 100,
                      "eval_images": 1000, "rewind_iteration": 30, "rewind_points": (0, 30), "bn_images": 2000},
        "paper": {"subset": None, "iterations": None, "rounds": 10, "batch_size": None, "eval_every": 1000,
                  "eval_images": None, "rewind_iteration": 2000, "rewind_points": (0, 100, 500, 2000),
                  "bn_images": 45_000},
    },
}


VIT_RATES = {"embedding": 0.4, "attention": 0.4, "mlp": 0.4, "output": 0.2}
"""Notebook 09's IMP rates for the transformer: 40% of each kind's surviving weights a round, 20% of the head's."""

MAY_BE_ZERO = {"rewind_iteration"}  # rewinding to iteration 0 is the original lottery ticket


class ParameterError(ValueError):
    """A notebook parameter of the wrong type or value; the message says what to pass."""


def _kind(value: object) -> str:
    return type(value).__name__


def notebook_settings(notebook: str, budget: str, *, seed: int, device: str, output_dir: str, **knobs) -> dict:
    """Check a notebook's parameters and fill each knob left at ``None`` from the budget.

    Raises ``ParameterError`` naming the parameter, what came in and what to pass, so that a
    papermill run with ``-p seed three`` stops at once with a message, not deep in training.
    """
    if notebook not in BUDGETS:
        raise ParameterError(f"no budgets are defined for notebook {notebook!r}")
    if not isinstance(budget, str) or budget not in BUDGET_NAMES:
        raise ParameterError(
            f"budget must be one of {', '.join(map(repr, BUDGET_NAMES))}, got {budget!r}: "
            f"for example papermill ... -p budget classroom"
        )
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ParameterError(f"seed must be a whole number, got {seed!r} ({_kind(seed)}): for example -p seed 3")
    if not isinstance(device, str):
        raise ParameterError(f"device must be a string such as 'auto', 'cpu' or 'cuda', got {device!r}")
    if not isinstance(output_dir, (str, os.PathLike)):
        raise ParameterError(f"output_dir must be a folder path, got {output_dir!r} ({_kind(output_dir)})")
    defaults = BUDGETS[notebook][budget]
    settings = {"budget": budget, "seed": seed, "device": device, "output_dir": str(output_dir)}
    settings.update({k: v for k, v in defaults.items() if isinstance(v, tuple)})  # fixed by the budget
    for name, value in knobs.items():
        if name not in defaults or isinstance(defaults[name], tuple):
            raise ParameterError(f"notebook {notebook} has no knob {name!r}; its knobs are {', '.join(defaults)}")
        smallest = 0 if name in MAY_BE_ZERO else 1
        if value is None:
            settings[name] = defaults[name]
        elif isinstance(value, bool) or not isinstance(value, int) or value < smallest:
            kind = "whole number, 0 or more," if smallest == 0 else "positive whole number"
            raise ParameterError(
                f"{name} must be a {kind} or None (the budget's value), got {value!r} "
                f"({_kind(value)}): for example -p {name} {defaults[name] or 100}"
            )
        else:
            settings[name] = value
    if "rewind_points" in settings:
        _fit_rewind_points(settings)
    progress.notebook_started(settings["output_dir"])  # check() records its verdicts there, in a kernel
    return settings


def _fit_rewind_points(settings: dict) -> None:
    """The instability analysis starts from the budget's rewind points below the run's length and
    from ``rewind_iteration``, so a learner's shorter run or other k stays consistent."""
    k, iterations = settings["rewind_iteration"], settings["iterations"]
    if iterations is not None and k >= iterations:
        raise ParameterError(f"rewind_iteration {k} must be smaller than iterations ({iterations}): "
                             f"for example -p rewind_iteration {iterations // 10}")
    points = {p for p in settings["rewind_points"] if iterations is None or p < iterations}
    settings["rewind_points"] = tuple(sorted(points | {0, k}))


def experiment_config(settings: dict, *, model: str = "lenet300", controls: tuple[str, ...] = (), **changes):
    """The ``ExperimentConfig`` of a notebook: ``model`` on its paper's dataset with the paper's
    settings, changed only by the knobs the budget (or the learner) set and by ``changes`` (such
    as ``rewind_iteration`` or ``retrain``, the subject of a section)."""
    from lthkit.config import make_config

    return make_config(
        model=model, rounds=settings.get("rounds", 0), controls=controls,
        seed=settings["seed"], iterations=settings["iterations"], subset=settings["subset"],
        eval_every=settings["eval_every"], eval_images=settings.get("eval_images"), device=settings["device"],
        batch_size=settings.get("batch_size"), **changes,
    )


def supermask_config(settings: dict, kind: str, *, density: float | None = None, weights: str = "signed_constant"):
    """The ``SupermaskConfig`` of notebook 08: LeNet-300-100 with the paper's training of ``kind``
    for the budget's ``mask_iterations``, from the notebook's seed (it trains where the data are)."""
    from lthkit.supermask import make_supermask_config

    return make_supermask_config(kind, settings["mask_iterations"], density=density, weights=weights,
                                 seed=settings["seed"], eval_every=settings["eval_every"])


def notebook_data(settings: dict, config):
    """The dataset of ``config`` as tensors on its device, measured on the config's number of
    validation and test images (all of them when it sets none)."""
    from lthkit.data import load_dataset

    data = load_dataset(config.dataset, device=config.device, subset=config.subset)
    return data.with_eval_size(config.eval_images)


def runs_folder(settings: dict, name: str, rules=None) -> Path:
    """Where a notebook keeps the IMP run ``name``: one folder per run, budget and seed (or seeds),
    so that runs at another budget or seed never resume each other. A run with the learner's own
    functions (``rules``, ``lthkit.imp.Rules``) gets a folder per version of those functions, so
    an edited function starts afresh instead of resuming rounds its earlier version made."""
    import hashlib

    seeds = _seeds(settings)
    which = f"seed{seeds[0]}" if len(seeds) == 1 else f"seeds{seeds[0]}-{seeds[-1]}"
    folder = Path(settings["output_dir"]) / f"{name}-{settings['budget']}-{which}"
    described = rules.describe() if rules is not None else {}
    if described:
        digest = hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:8]
        folder = folder.with_name(f"{folder.name}-yours-{digest}")
    return folder


def run_folder(settings: dict, name: str, rules=None) -> Path:
    """The run folder of the notebook's own seed: ``runs_folder`` itself, or, where the budget runs
    several seeds (the paper's), its ``seedN`` folder inside (``lthkit.imp.run_imp_seeds``'s layout)."""
    folder = runs_folder(settings, name, rules)
    return folder if len(_seeds(settings)) == 1 else folder / f"seed{settings['seed']}"


def notebook_imp(settings: dict, config, name: str, data, dense_from: str | None = None, rules=None):
    """IMP as the notebooks run it: checkpointed round by round in ``run_folder`` (run the cell
    again after an interruption and it resumes), one printed line per trained network.
    ``dense_from`` names another run of the notebook whose dense round 0 this one shares;
    ``rules`` are the learner's own functions (``lthkit.imp.Rules``).

    A budget with several ``seeds`` (the paper's: ``PAPER_SEEDS``) runs IMP once per seed, all
    seeds' networks of a round trained together (``run_imp_seeds``, stacked on a GPU), each seed
    in a folder of its own under ``runs_folder``; the notebook's own seed's results are returned,
    and ``seed_runs`` gives all of them."""
    from lthkit.imp import run_imp, run_imp_seeds

    folder = runs_folder(settings, name, rules)
    dense = runs_folder(settings, dense_from) if dense_from else None
    seeds = _seeds(settings)
    if len(seeds) == 1:
        return run_imp(config, folder, data=data, resume=True, progress=False, on_arm=print_arm, dense_from=dense,
                       rules=rules)
    return run_imp_seeds(config, seeds, folder, data=data, resume=True, progress=False, dense_from=dense,
                         rules=rules, on_arm=lambda seed, *arm: print_arm(*arm, seed=seed))[0]


def notebook_sparse(settings: dict, config, sparse, name: str, data, update=None):
    """A network trained sparse from the start as the notebooks run it (``lthkit.sparse_training.run_sparse``):
    saved in ``runs_folder`` and read back when the cell runs again, one printed line. ``update`` is the
    learner's drop-and-grow: a folder per version of its code, as ``runs_folder`` does for ``Rules``."""
    import hashlib
    import inspect

    from lthkit.course.fallback import learners_own
    from lthkit.sparse_training import run_sparse

    folder = runs_folder(settings, name)
    if update is not None:
        try:
            code = inspect.getsource(learners_own(update))
        except (OSError, TypeError):
            code = repr(update)
        folder = folder.with_name(f"{folder.name}-yours-{hashlib.sha256(code.encode()).hexdigest()[:8]}")
    run = run_sparse(config, sparse, folder, data=data, update=update, resume=True, progress=False)
    print(f"{name:10s} {run.mask.weights_remaining():.2%} of the weights, {config.training.iterations} iterations: "
          f"{run.result.early_stop_test_accuracy:.2%} at early stop (iteration {run.result.early_stop_iteration}), "
          f"{run.seconds:.0f} s", flush=True)
    return run


def notebook_transfer(settings: dict, config, name: str, source: str, own: str, data, transfer=None):
    """The tickets of the notebook's IMP run ``source`` trained in ``config`` beside the target's own run ``own``
    and the random and reinit controls (``lthkit.transfer.run_transfer``), resumed when the cell runs again,
    one printed line per network. ``transfer`` is the learner's: a folder per version of its code."""
    import hashlib

    from lthkit.transfer import fingerprint, run_transfer, transfer_ticket

    folder = runs_folder(settings, name)
    if transfer is not None:
        digest = hashlib.sha256(fingerprint(transfer).encode()).hexdigest()[:8]
        folder = folder.with_name(f"{folder.name}-yours-{digest}")
    return run_transfer(config, runs_folder(settings, source), runs_folder(settings, own), folder, data=data,
                        resume=True, progress=False, on_arm=print_arm, transfer=transfer or transfer_ticket)


def _seeds(settings: dict) -> list[int]:
    return [settings["seed"] + k for k in settings.get("seeds", (0,))]


def seed_runs(settings: dict, name: str, rules=None) -> list:
    """The results of every seed of ``notebook_imp``'s run ``name`` when the budget runs several
    (the paper's), else an empty list: a notebook plots them where it otherwise plots the
    committed reference runs."""
    seeds = _seeds(settings)
    if len(seeds) == 1:
        return []
    folder = runs_folder(settings, name, rules)
    return [Results.load(folder / f"seed{s}" / "results.json") for s in seeds]


def ticket_trainer(config, data):
    """``train(model, mask)``, training a network as ``run_imp`` trains a round's ticket (the
    config's schedule and batches, the mask kept through training) and returning its result:
    what the learner's own IMP round calls in notebook 03."""
    from lthkit.masks import Mask
    from lthkit.train import train

    def train_ticket(model, mask=None):
        return train(model, data, config.training, mask=Mask(mask) if mask is not None else None,
                     progress=False).result

    return train_ticket


REFERENCE_DIR = Path(__file__).resolve().parents[2] / "notebooks" / "reference"


def reference_runs(name: str = "mnist-lenet300", folder: str | os.PathLike | None = None) -> list:
    """The committed reference runs of ``name`` (one ``Results`` per seed, from the files
    ``name-seedN.json``) that notebooks draw beside a learner's run."""
    paths = sorted(Path(folder or REFERENCE_DIR).glob(f"{name}-seed*.json"))
    if not paths:
        raise FileNotFoundError(
            f"no reference runs {name}-seed*.json in {folder or REFERENCE_DIR}: "
            f"run notebooks/reference/make_reference.sh to make them"
        )
    return [Results.load(p) for p in paths]


def save_json(output_dir: str | os.PathLike, name: str, data: object) -> Path:
    """Write what a notebook computed to ``output_dir/name`` as JSON, and return the path."""
    path = Path(output_dir) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n")
    return path


def environment_report() -> dict[str, str]:
    """Versions and hardware, for the welcome notebook and for bug reports."""
    import matplotlib
    import torchvision

    from lthkit.train import resolve_device

    try:
        import ipywidgets

        widgets = ipywidgets.__version__
    except ImportError:
        widgets = "not installed (sliders will not show)"
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "matplotlib": matplotlib.__version__,
        "ipywidgets": widgets,
        "device": str(resolve_device("auto")),
        "cpu threads": str(torch.get_num_threads()),
        "machine": f"{platform.system()} {platform.machine()}",
    }


def measure_speed(data, iterations: int = 300) -> dict[str, float]:
    """Seconds per LeNet-300-100 training iteration (batch 60, Adam) on ``data``: of one network
    alone and of an IMP round's three arms side by side; seconds per evaluation; seconds per
    iteration of an edge-popup supermask (batch 250, the costlier kind, notebook 08); and seconds
    per training iteration and per evaluation of the small vision transformer (notebook 09)."""
    from lthkit.masks import Mask
    from lthkit.models import build_model
    from lthkit.supermask import attach, make_supermask_config
    from lthkit.train import TrainConfig, evaluate, train, train_together

    def seconds(count: int) -> float:
        models = [build_model("lenet300", data.info.input_shape, data.info.num_classes) for _ in range(count)]
        start = time.perf_counter()
        train_together(models, data, TrainConfig(iterations=iterations, eval_every=iterations),
                       masks=[Mask.ones_like(m) for m in models], progress=False)
        return time.perf_counter() - start

    alone, three = seconds(1), seconds(3)
    model = build_model("lenet300", data.info.input_shape, data.info.num_classes)
    start = time.perf_counter()
    evaluate(model, data.val), evaluate(model, data.test)
    per_eval = time.perf_counter() - start
    mask_iterations = max(iterations // 4, 1)
    config = make_supermask_config("top_k", mask_iterations, density=0.5, eval_every=mask_iterations)
    attach(model, config)
    start = time.perf_counter()
    train(model, data, config.training, progress=False)
    masks = time.perf_counter() - start
    vit = build_model("vit", data.info.input_shape, data.info.num_classes)
    start = time.perf_counter()
    evaluate(vit, data.val), evaluate(vit, data.test)
    vit_eval = time.perf_counter() - start
    vit_iterations = max(iterations // 10, 1)
    start = time.perf_counter()
    train(vit, data, TrainConfig(iterations=vit_iterations, eval_every=vit_iterations), progress=False)
    vit_seconds = time.perf_counter() - start
    return {"per_iteration": max(alone - 2 * per_eval, 0.0) / iterations,
            "per_round_iteration": max(three - 6 * per_eval, 0.0) / iterations, "per_evaluation": per_eval,
            "per_mask_iteration": max(masks - 2 * per_eval, 0.0) / mask_iterations,
            "per_vit_iteration": max(vit_seconds - 2 * vit_eval, 0.0) / vit_iterations, "per_vit_evaluation": vit_eval}


def training_work(notebook: str, budget: str) -> tuple[int, int, float, int]:
    """What a notebook runs at a budget, from its knobs: (iterations of one network trained alone,
    iterations of three arms trained side by side, evaluations counted in evaluations of the whole
    validation and test sets, supermask iterations)."""
    knobs = BUDGETS[notebook][budget]
    its, every = knobs["iterations"], knobs.get("eval_every", knobs["iterations"])
    rounds = knobs.get("rounds", 0)
    if notebook == "10":  # LeNet-300-100's share: its ticket's rounds and the channel-pruned networks
        rounds = knobs["ticket_rounds"][knobs["models"].index("lenet300")] + len(knobs["channel_keeps"])
    seeds = len(knobs.get("seeds", (0,)))  # 03 and 04 at the paper's budget: five IMP runs
    alone = {"00": 1, "01": 1, "02": 2, "03": (rounds + 1) * seeds, "04": seeds + 4, "07": 1 + rounds, "08": 1,
             "09": 1 + rounds, "10": 1 + rounds, "11": 3 * (rounds + 1),  # 11: three IMP runs, the ticket alone
             # 12: IMP's r + 1, SynFlow, the ticket's mask re-initialised, static, SET, RigL, and RigL for r + 1 trainings
             "12": 2 * rounds + 7}[notebook]
    # 07 trains 10 arms a round beside one another in runs of 2 or 4 (IMP and each score at initialisation
    # with their checks), counted here in units of three arms side by side; 08's IMP rounds train three arms
    together = {"04": rounds * seeds, "07": 10 * rounds // 3, "08": rounds, "09": rounds,
                "11": 4 * rounds}.get(notebook, 0)  # 11: four moves, each round's ticket, random and reinit
    # 08 trains two sampled supermasks, and an edge-popup one per density and one over the initial weights
    masks = 3 + len(knobs["densities"]) if notebook == "08" else 0
    mask_its = knobs.get("mask_iterations", 0)
    evals = (alone + 3 * together) * (its // every + 2) + masks * (mask_its // every + 2)
    n = None if notebook == "10" else knobs.get("eval_images")  # 10's eval_images are its CIFAR-10 networks'
    share = 1.0 if n is None else (min(n, 5000) + min(n, 10000)) / 15000  # MNIST's 5,000 and 10,000 images
    return alone * its, together * its, evals * share, masks * mask_its


LENET_NOTEBOOKS = ("00", "01", "02", "03", "04", "07", "08", "09", "10", "11", "12")


def predict_minutes(speed: dict[str, float], budget: str = "classroom") -> dict[str, float]:
    """Minutes each LeNet-300-100 notebook's training takes at ``budget`` on the machine ``speed``
    measured: a lower bound, since plots, checkpoints and starting the kernel come on top."""
    out = {}
    for nb in LENET_NOTEBOOKS:
        alone, together, evals, mask_its = training_work(nb, budget)
        if nb == "09":  # the transformer's arithmetic, not its overheads, sets the pace: three arms cost three
            out[nb] = ((alone + 3 * together) * speed["per_vit_iteration"] + evals * speed["per_vit_evaluation"]) / 60
            continue
        out[nb] = (alone * speed["per_iteration"] + together * speed["per_round_iteration"]
                   + evals * speed["per_evaluation"] + mask_its * speed["per_mask_iteration"]) / 60
    return out


CIFAR_NOTEBOOKS = ("05", "06", "10")


def _cifar_split(n: int, g: torch.Generator, device: torch.device):
    from lthkit.data import Split, dataset_info

    info = dataset_info("cifar10")
    return Split(torch.randn((n, *info.input_shape), generator=g).to(device),
                 torch.randint(0, info.num_classes, (n,), generator=g).to(device))


def measure_cifar_speed(models: tuple[str, ...] = ("conv2", "conv4", "conv6", "resnet20"), device: str = "auto",
                        iterations: int = 10) -> dict[str, dict[str, float]]:
    """Per CIFAR-10 network, at its paper's batch size on random CIFAR-10-shaped tensors: seconds
    per training iteration alone (``per_iteration``), what each further arm trained beside it adds
    (``per_extra_arm``), and seconds per evaluated image (``per_image``). A LeNet burst says
    nothing about a conv net's cost, so notebooks 05, 06 and 10 are predicted from these."""
    from lthkit.data import Splits, dataset_info
    from lthkit.masks import Mask
    from lthkit.models import build_model, model_spec
    from lthkit.train import TrainConfig, evaluate, resolve_device, train_together

    target, g = resolve_device(device), torch.Generator().manual_seed(0)
    val, few = _cifar_split(200, g, target), _cifar_split(8, g, target)
    data = Splits(dataset_info("cifar10"), _cifar_split(1024, g, target), few, few)
    speed = {}
    for name in models:
        paper = model_spec(name).paper
        config = TrainConfig(iterations=iterations, batch_size=paper.batch_size, eval_every=iterations,
                             optimizer=paper.optimizer, lr=paper.lr, augment=paper.augment)

        def seconds(arms: int, its: int) -> float:
            nets = [build_model(name, (3, 32, 32)) for _ in range(arms)]
            start = time.perf_counter()
            train_together(nets, data, replace(config, iterations=its), masks=[Mask.ones_like(n) for n in nets],
                           progress=False)
            return time.perf_counter() - start

        seconds(1, 2)  # one-off set-up costs (oneDNN's kernels are chosen on first use)
        net = build_model(name, (3, 32, 32))
        start = time.perf_counter()
        evaluate(net, val)
        per_image = (time.perf_counter() - start) / len(val)
        evals = 4 * len(few) * per_image  # train_together measures validation and test at the start and end
        alone = max(seconds(1, iterations) - evals, 0.0) / iterations
        pair = max(seconds(2, iterations) - 2 * evals, 0.0) / iterations
        speed[name] = {"per_iteration": alone, "per_extra_arm": max(pair - alone, 0.0), "per_image": per_image}
    return speed


def cifar_work(notebook: str, budget: str) -> list[tuple[str, int, int, int]]:
    """What notebook 05, 06 or 10 (its CIFAR-10 share) trains at a budget, as (network, arms trained side by side,
    iterations, images evaluated per arm), one entry per training, mirroring the notebooks' cells."""
    from lthkit.models import model_spec

    knobs = BUDGETS[notebook][budget]
    every = knobs["eval_every"]
    n = knobs["eval_images"]
    per_eval = min(n or 5000, 5000) + min(n or 10000, 10000)

    def job(model: str, arms: int, its: int, extra_images: int = 0) -> tuple[str, int, int, int]:
        return model, arms, its, (its // every + 2) * per_eval + extra_images

    jobs = []
    if notebook == "10":  # the CIFAR-10 networks' share: each ticket's rounds, then its channel-pruned networks
        for model, rounds in zip(knobs["models"], knobs["ticket_rounds"]):
            if model != "lenet300":
                its = knobs["cifar_iterations"] or model_spec(model).paper.iterations
                jobs += [job(model, 1, its)] * (1 + rounds + len(knobs["channel_keeps"]))
        return jobs
    if notebook == "05":
        for model in knobs["models"]:
            its, arms = knobs["iterations"] or model_spec(model).paper.iterations, 1 + len(knobs["controls"])
            jobs += [job(model, 1, its)] + [job(model, arms, its)] * knobs["rounds"]
        return jobs
    its = knobs["iterations"] or model_spec("resnet20").paper.iterations
    k, rounds = knobs["rewind_iteration"], knobs["rounds"]
    points = sorted({p for p in knobs["rewind_points"] if p < its} | {0, k})
    jobs.append(job("resnet20", 1, max(1, *points)))
    line = 11 * (min(n or 10000, 10000) + knobs["bn_images"])  # each point: its batch-norm statistics, its error
    for p in points:  # two copies, then the 11 networks along the line between them
        jobs += [job("resnet20", 1, its - p)] * 2 + [("resnet20", 1, 0, line)]
    jobs.append(job("resnet20", 1, its))
    jobs += [job("resnet20", 2, its - k)] * rounds  # weight rewinding to k, beside the reinit control
    if k:
        jobs += [job("resnet20", 1, its)] * rounds  # rewinding to 0 shares the dense round
    jobs += [job("resnet20", 1, its - k)] * (2 * rounds)  # learning-rate rewinding and fine-tuning
    return jobs


def predict_cifar_minutes(speed: dict[str, dict[str, float]], budget: str = "classroom") -> dict[str, float]:
    """Minutes notebooks 05, 06 and 10 train on CIFAR-10 at ``budget`` on the machine ``measure_cifar_speed``
    timed: a lower bound, like ``predict_minutes``."""
    out = {}
    for nb in CIFAR_NOTEBOOKS:
        total = 0.0
        for model, arms, its, images in cifar_work(nb, budget):
            s = speed[model]
            total += its * (s["per_iteration"] + (arms - 1) * s["per_extra_arm"]) + arms * images * s["per_image"]
        out[nb] = total / 60
    return out


def predicted_minutes(speed: dict[str, float], cifar_speed: dict[str, dict[str, float]],
                      budget: str = "classroom") -> dict[str, float]:
    """Minutes each notebook trains at ``budget``: its LeNet-300-100 share (``predict_minutes``)
    and its CIFAR-10 share (``predict_cifar_minutes``) added; notebook 10 has both."""
    lenet, cifar = predict_minutes(speed, budget), predict_cifar_minutes(cifar_speed, budget)
    return {nb: lenet.get(nb, 0.0) + cifar.get(nb, 0.0) for nb in sorted({*lenet, *cifar})}


def one_shot(config, out_dir: str | Path, r: int, *, data, progress: bool = True):
    """One-shot pruning, for comparison with IMP: prune round 0's trained dense network in a
    single step to exactly the per-layer sizes of round ``r``'s mask, rewind, and train.
    """
    from lthkit.masks import Mask, prune_by_magnitude
    from lthkit.models import build_model
    from lthkit.rewind import Snapshot, rewind_to
    from lthkit.run_folder import RunFolder
    from lthkit.train import train

    folder = RunFolder(out_dir)
    target = Mask.from_state_dict(folder.load_round(r)["mask"])
    shape, classes = data.info.input_shape, data.info.num_classes
    dense = build_model(config.model, shape, classes)
    dense.load_state_dict(folder.load_round(0)["trained"])
    rates = {n: (target.size(n) - target.alive(n)) / target.size(n) for n in target}
    mask = prune_by_magnitude(dense, Mask.ones_like(dense), rates)
    model = rewind_to(build_model(config.model, shape, classes), Snapshot.load(folder.rewind_point), mask)
    run = train(model, data, config.training, mask=mask, start_iteration=config.rewind_iteration,
                progress=progress, desc=f"one-shot to round {r}")
    return mask, run.result
