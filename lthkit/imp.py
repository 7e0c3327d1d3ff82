"""Iterative magnitude pruning (IMP): train, prune, rewind, repeat, with the controls.

Round 0 trains the dense network. It is recorded as round 0's ``ticket`` arm (results.json's
rounds[0].arms["ticket"]): every round's ticket is what the next round prunes, and round 0's is the
dense network. Every later round takes the previous round's trained ticket, removes the
smallest-magnitude fraction of its surviving weights, rewinds the survivors to the rewind point (initialisation, or iteration k) and trains again. With the
same mask, the controls ask whether the initialisation matters:

- ``reinit``: the same mask on fresh random weights (with late rewinding, trained over the
  same iterations k..T as the ticket, so both get the same budget);
- ``random``: a random mask with the same number of weights per layer, on the rewind point;
- ``signs`` (Zhou et al. 2019): ``reinit``'s fresh weights given the rewound weights' signs;
  the two differ in the signs alone.

At round 0 every mask is full, so the controls would only repeat the dense network; they
start at round 1.

``retrain`` chooses what a later round starts from (Renda et al. 2020 compare the three):
``rewind`` (the lottery ticket: weights and learning-rate schedule back to iteration k),
``lr-rewind`` (keep the trained weights, replay the schedule from k) and ``finetune`` (keep
the trained weights, train as many iterations at the final learning rate).

The arms of a round train side by side on the same batches (``train_together``), and with
``run_imp_seeds`` the arms of several seeds' runs too, each on its seed's batches: in the plain
loop each bit for bit as it would alone, stacked into one computation (on a GPU) to float
rounding. Each arm's time in ``timings.json`` is its share of the round, and ``training`` there
says how the round trained.

When a folder is given, each arm's result is written to ``results.json`` as soon as it is
known, and each round's mask and trained weights to ``round_NN.pt``; the round in training is
checkpointed every few minutes (``checkpoint_every_s``). A killed run started again with
``resume=True`` skips what is done, picks the round it was in up at its last checkpoint, and
ends with the very results an uninterrupted run gives (stacked runs of several seeds: unless
the kill fell between two seeds' records of a round, when the rest of that round trains in a
smaller stack, equal to rounding): every random stream is seeded from
``(seed, round, arm)`` or ``(seed, iteration)``. ``lthkit.run_folder.RunFolder`` owns the files:
each is written atomically, and a run holds the folder's lock, so a second run on it stops.

This module is the algorithm, top to bottom: ``run_imp`` opens the runs, ``imp_rounds`` goes
through the rounds (each round's mask, ticket and controls), ``train_round`` trains them. Beside it,
elsewhere: each run's bookkeeping, resuming and several seeds in step (``lthkit.imp_runs``), the
learner's rules and their checks (``lthkit.rules``), what a run's folder holds and whether it may go
on (``lthkit.run_records``), a saved run read back (``lthkit.saved_runs``).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch

from lthkit.config import ConfigError, ExperimentConfig
from lthkit.data import Splits
from lthkit.imp_runs import CHECKPOINT_EVERY_S, ImpRun, opened_runs, train_round
from lthkit.masks import Mask, count_to_prune, prune_globally
from lthkit.models import prunable_layers
from lthkit.prune_at_init import SCORES, prune_at_init
from lthkit.results import ArmResult, Results
from lthkit.rules import RuleError, Rules
from lthkit.run_folder import RunFolder
from lthkit.saved_runs import load_ticket, load_trained, ticket_costs  # noqa: F401
from lthkit.seeds import derive_seed, generator
from lthkit.train import TrainConfig


def run_imp(
    config: ExperimentConfig,
    out_dir: str | Path | None = None,
    *,
    data: Splits | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    on_arm: Callable[[int, str, ArmResult, float], None] | None = None,
    dense_from: str | Path | None = None,
    rules: Rules | None = None,
    checkpoint_every_s: float = CHECKPOINT_EVERY_S,
    engine: str = "auto",
    other_threads: bool = False,
) -> Results:
    """Run IMP as ``config`` says and return its results (also saved under ``out_dir``).

    ``on_arm(round, arm, result, seconds)`` is called after each training, for progress
    reports. ``data`` may be passed to reuse tensors already loaded. ``dense_from`` names the
    folder of a run whose round 0 this run shares (``dense_round_of``): it is taken from there,
    bit for bit what training it here would give, instead of being trained again. ``rules``
    replaces lthkit's pruning, rewinding and controls by a learner's own (``Rules``).

    The run holds ``out_dir``'s lock throughout: a second run on the folder stops at once with
    ``FolderInUse`` (a ``ConfigError``). The round in training is checkpointed at an evaluation
    once ``checkpoint_every_s`` seconds of wall time have passed (0: at every evaluation).
    ``engine`` is how a round's arms train together (``lthkit.train.train_together``): ``auto``
    picks what is faster on the device, and the run says which. The device, the engine and the CPU's
    thread count are recorded (``arithmetic.json``): a resume computed another way is refused, or,
    with ``other_threads``, goes on on another thread count and says so.
    """
    folder = RunFolder(out_dir) if out_dir is not None else None
    return _run([config], [folder], [dense_from], [on_arm], data=data, resume=resume, overwrite=overwrite,
                progress=progress, rules=rules, checkpoint_every_s=checkpoint_every_s, engine=engine,
                other_threads=other_threads)[0]


def run_imp_seeds(
    config: ExperimentConfig,
    seeds: list[int],
    out_dir: str | Path | None = None,
    *,
    data: Splits | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    on_arm: Callable[[int, int, str, ArmResult, float], None] | None = None,
    dense_from: str | Path | None = None,
    rules: Rules | None = None,
    checkpoint_every_s: float = CHECKPOINT_EVERY_S,
    engine: str = "auto",
    other_threads: bool = False,
) -> list[Results]:
    """IMP for each of ``seeds`` (``config`` with that seed), each run in ``out_dir/seedN``: the
    runs go through their rounds in step, and each round's arms of every seed train together
    (``train_together``: stacked into one computation where that is faster), each from its own
    seed's initialisation, data order and controls. Each seed's folder is a complete run, as
    ``run_imp`` with that seed writes it: it resumes, plots and exports on its own.

    ``on_arm(seed, round, arm, result, seconds)`` is called after each training; ``dense_from``
    names a folder of ``seedN`` folders whose round 0 these runs share. The rest is ``run_imp``'s.
    """
    seeds = list(seeds)
    if not seeds or len(set(seeds)) != len(seeds) or \
            not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        raise ConfigError(f"seeds must be different whole numbers, such as 0-4, got {seeds!r}")
    configs = [ExperimentConfig.from_dict({**config.to_dict(), "seed": s}) for s in seeds]
    folders = [RunFolder(Path(out_dir) / f"seed{s}") if out_dir is not None else None for s in seeds]
    dense = [Path(dense_from) / f"seed{s}" if dense_from is not None else None for s in seeds]
    on_arms = [on_arm and functools.partial(on_arm, s) for s in seeds]
    return _run(configs, folders, dense, on_arms, data=data, resume=resume, overwrite=overwrite, progress=progress,
                rules=rules, checkpoint_every_s=checkpoint_every_s, engine=engine, other_threads=other_threads)


def _run(configs: list[ExperimentConfig], folders: list, dense_from: list, on_arms: list, *, engine: str,
         **options) -> list[Results]:
    with opened_runs(configs, folders, dense_from, on_arms, engine=engine, **options) as runs:
        imp_rounds(runs, engine, say=print if any(on_arms) else None)
    return [run.results for run in runs]


def imp_rounds(runs: list[ImpRun], engine: str = "auto", say: Callable | None = None) -> None:
    """IMP's rounds for runs of one configuration but their seeds, in step. Each round: every run's
    mask (pruned from its last trained ticket, or for a method pruning at initialisation, found
    before training), its ticket and controls on that mask, then all their arms trained together.
    ``say`` tells how they train."""
    active, told = list(runs), set()
    for r in range(runs[0].config.rounds + 1):
        jobs = []
        for run in active:
            if r > 0:
                run.mask = next_mask(run.config, run.trained, run.mask, run.rules) if run.config.method == "imp" \
                    else mask_at_init(run, r)
            if r == 0 and run.dense_from is not None and not run.saved(0):
                run.trained = run.take_dense_round(run.mask)
                continue
            run.trained, arms = ticket_of_round(run, r)
            arms.update(controls_of_round(run, r))
            jobs.append((run, arms, training_of_round(run.config, r)))
        train_round(r, jobs, engine, say, told)
        # IMP prunes a collapsed ticket further: every later round of that run would be collapsed too
        active = [run for run in active if not (run.config.method == "imp" and run.collapsed(r))]


def next_mask(config: ExperimentConfig, trained: torch.nn.Module, mask: Mask, rules: Rules = Rules()) -> Mask:
    """The paper's pruning step: layer-wise rates per kind (each layer pruned by magnitude, or by the
    learner's ``rules``), or one global rate."""
    if config.global_pruning:
        return prune_globally(trained, mask, next(iter(config.prune_rates.values())))
    return rules.pruned(trained, mask, config.prune_rates)


def ticket_of_round(run: ImpRun, r: int) -> tuple[torch.nn.Module | None, dict[str, tuple[torch.nn.Module, Mask]]]:
    """The ticket of round ``r`` under the run's mask, and the arm to train it (none when a finished
    round saved it, or when it collapsed): where its training starts is initialisation in round 0;
    later, the rewind point (``retrain="rewind"``), or the last round's trained weights under the new
    mask (learning-rate rewinding and fine-tuning)."""
    if run.saved(r):
        return run.saved_ticket(r), {}
    if run.collapsed(r):
        return None, {}
    if r == 0:
        ticket = run.fresh()
    elif run.config.retrain == "rewind":
        ticket = run.rules.rewound(run.fresh(), run.rewind_point, run.mask)
    else:
        ticket = run.fresh()
        ticket.load_state_dict(run.trained.state_dict())
        run.mask.apply_(ticket)
    return ticket, {"ticket": (ticket, run.mask)}


def training_of_round(config: ExperimentConfig, r: int) -> TrainConfig:
    """How round ``r`` trains: round 0 and rewinding as configured; fine-tuning goes on at the
    final learning rate."""
    tc = config.training
    if r == 0 or config.retrain != "finetune":
        return tc
    return replace(tc, lr=tc.lr_at(tc.iterations - 1), warmup=0, milestones=())


def arms_of_round(config: ExperimentConfig, r: int) -> list[str]:
    return ["ticket"] + (list(config.controls) if r > 0 else [])


def controls_of_round(run: ImpRun, r: int) -> dict[str, tuple[torch.nn.Module, Mask]]:
    """The controls of round ``r`` not yet trained, each a network and its mask."""
    made = {"reinit": reinit_control, "random": random_control, "signs": signs_control, "inverted": inverted_control}
    return {arm: made[arm](run, r) for arm in arms_of_round(run.config, r)[1:] if not run.arm_done(r, arm)}


def reinit_control(run: ImpRun, r: int) -> tuple[torch.nn.Module, Mask]:
    """The ticket's mask on fresh random weights."""
    seed = derive_seed("reinit", run.config.seed, r)
    return run.rules.reinitialized(run.fresh(), run.mask, seed), run.mask


def signs_control(run: ImpRun, r: int) -> tuple[torch.nn.Module, Mask]:
    """The rewind point's signs on the reinit control's fresh magnitudes (the same seed)."""
    seed = derive_seed("reinit", run.config.seed, r)
    return run.rules.signs_kept(run.fresh, run.rewind_point.state, run.mask, seed), run.mask


def random_control(run: ImpRun, r: int) -> tuple[torch.nn.Module, Mask]:
    """As many weights per layer as the ticket keeps, at random positions, on the rewind point."""
    mask = run.rules.random_mask_of(run.mask, generator("random-mask", run.config.seed, r))
    return run.rules.rewound(run.fresh(), run.rewind_point, mask), mask


def inverted_control(run: ImpRun, r: int) -> tuple[torch.nn.Module, Mask]:
    """Frankle et al. (2021)'s inversion: the score's lowest weights kept instead of its highest."""
    mask = mask_at_init(run, r, invert=True)
    return run.rules.rewound(run.fresh(), run.rewind_point, mask), mask


def mask_at_init(run: ImpRun, r: int, *, invert: bool = False) -> Mask:
    """Round ``r``'s mask found before training: the method's score of the initial weights, pruned
    to the sparsity IMP reaches in round ``r`` (per layer, or in total with global pruning); its time
    is recorded in timings.json as the round's ``scoring``."""
    model, start = run.fresh(), time.perf_counter()
    density = density_of_round(run.config, model, r)
    try:
        mask = prune_at_init(model, scores_at_init(run), density, steps=run.config.score_steps, invert=invert,
                             scope="layerwise" if isinstance(density, dict) else "global")
    except ValueError as err:
        if run.rules.score is None:
            raise
        raise RuleError(f"your score: {err}") from None
    run.record_time(r, "scoring_inverted" if invert else "scoring", time.perf_counter() - start)
    return mask


def scores_at_init(run: ImpRun) -> Callable:
    """The run's score at initialisation (the learner's ``Rules.score`` when given), with what it
    needs bound: a seeded batch of ``score_images`` training images for SNIP and GraSP, the input's
    shape for SynFlow."""
    method = run.config.method
    score = run.rules.score or SCORES[method]
    if method in ("snip", "grasp"):
        train = run.data.train
        picked = torch.randperm(len(train), generator=generator("score-images", run.config.seed))
        picked = picked[:run.config.score_images].to(train.x.device)
        return functools.partial(score, images=train.x[picked], labels=train.y[picked])
    if method == "synflow":
        return functools.partial(score, input_shape=run.data.info.input_shape)
    return score


def density_of_round(config: ExperimentConfig, model: torch.nn.Module, r: int) -> float | dict[str, float]:
    """The fraction of weights IMP keeps after ``r`` rounds: in each layer (layer-wise pruning,
    each round removing its kind's rate of the layer's alive weights) or in total (global
    pruning), counted as ``count_to_prune`` counts, so a mask pruned at initialisation to it has
    exactly as many weights as IMP's ticket of round ``r``, per layer or in total."""
    sizes = {n: p.numel() for n, p in model.named_parameters() if n in prunable_layers(model)}

    def alive(size: int, rate: float) -> int:
        left = size
        for _ in range(r):
            left -= count_to_prune(rate, left)
        return left

    if config.global_pruning:
        total = sum(sizes.values())
        return alive(total, next(iter(config.prune_rates.values()))) / total
    kinds = prunable_layers(model)
    return {n: alive(size, config.prune_rates[kinds[n]]) / size for n, size in sizes.items()}
