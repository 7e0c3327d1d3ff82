"""Iterative magnitude pruning (IMP): train, prune, rewind, repeat, with the controls.

Round 0 trains the dense network (recorded as that round's ``ticket`` arm). Every later round takes the previous round's trained
ticket, removes the smallest-magnitude fraction of its surviving weights, rewinds the
survivors to the rewind point (initialisation, or iteration k) and trains again. With the
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

Beside the rounds, elsewhere: the learner's rules and their checks (``lthkit.rules``), what a run's
folder holds and whether it may go on (``lthkit.run_records``), a saved run read back
(``lthkit.saved_runs``).
"""

from __future__ import annotations

import contextlib
import functools
import json
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch

from lthkit.config import ConfigError, ExperimentConfig
from lthkit.data import Splits, load_dataset
from lthkit.masks import (Mask, count_to_prune, layer_rates, prune_by_magnitude, prune_globally, prune_layer,
                          random_mask_like)
from lthkit.models import build_model, prunable_layers
from lthkit.prune_at_init import SCORES, collapsed_layers, prune_at_init
from lthkit.results import ArmResult, Results, RoundResult
from lthkit.rewind import Snapshot, keep_signs, reinitialize, reinitialize_keeping_signs, rewind_to
from lthkit.rules import (RuleError, Rules, _checked_mask, _checked_model, _checked_rates,  # noqa: F401
                          _copy, _fingerprint)
from lthkit.run_folder import RunFolder
from lthkit.run_records import (AFTER_ROUND_0, ROUND_0_SETTINGS, arithmetic_of, check_arithmetic,  # noqa: F401
                                check_eval_sets, check_rules, dense_round_of, open_run_folder)
from lthkit.saved_runs import load_ticket, load_trained, ticket_costs  # noqa: F401
from lthkit.seeds import derive_seed, generator
from lthkit.stacked import ENGINES, Engine, choose_engine
from lthkit.train import TrainConfig, join_states, masked_step, split_state, train_together

CHECKPOINT_EVERY_S = 300.0  # a killed run loses at most about this much training
CHECKPOINT_FORMAT = 2  # training state per network (lthkit.train.train_together); older checkpoints are not used


def arms_of_round(config: ExperimentConfig, r: int) -> list[str]:
    return ["ticket"] + (list(config.controls) if r > 0 else [])


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


def next_mask(config: ExperimentConfig, trained: torch.nn.Module, mask: Mask, rule: Callable = prune_layer,
              rates_of: Callable = layer_rates) -> Mask:
    """The paper's pruning step: layer-wise rates per kind (``rates_of``: ``layer_rates`` or a
    learner's; each layer pruned by ``rule``), or one global rate."""
    if config.global_pruning:
        return prune_globally(trained, mask, next(iter(config.prune_rates.values())))
    rates = layer_rates(trained, config.prune_rates) if rates_of is layer_rates else \
        _checked_rates(rates_of(trained, dict(config.prune_rates)), mask)
    if rule is prune_layer:
        return prune_by_magnitude(trained, mask, rates)
    params = dict(trained.named_parameters())
    return _checked_mask("prune_layer", {n: rule(params[n].detach().clone(), m.clone(), rates[n])
                                         for n, m in mask.items()}, mask)


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
    return _run_seeds([config], [folder], [dense_from], [on_arm], data=data, resume=resume, overwrite=overwrite,
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
    return _run_seeds(configs, folders, dense, on_arms, data=data, resume=resume, overwrite=overwrite,
                      progress=progress, rules=rules, checkpoint_every_s=checkpoint_every_s, engine=engine,
                      other_threads=other_threads)


def _run_seeds(configs: list[ExperimentConfig], folders: list[RunFolder | None], dense_from: list, on_arms: list, *,
               data: Splits | None, resume: bool, overwrite: bool, progress: bool, rules: Rules | None,
               checkpoint_every_s: float, engine: str, other_threads: bool = False) -> list[Results]:
    if engine not in ENGINES:
        raise ConfigError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    rules = rules or Rules()
    with contextlib.ExitStack() as held:
        for folder in folders:
            if folder:
                held.enter_context(folder.locked())
        runs = []
        for config, folder, on_arm in zip(configs, folders, on_arms):
            results = open_run_folder(config, folder.path, resume=resume, overwrite=overwrite) if folder else \
                Results(config.to_dict())
            check_rules(rules, folder, results)
            data = _data_of(config, data)
            check_eval_sets(data, folder, results)
            runs.append(_Run(config, folder, data, results, rules, on_arm, progress, checkpoint_every_s))
            check_arithmetic(arithmetic_of(config, engine, rules, runs[-1].fresh()), folder, results,
                              other_threads=other_threads)
        _run_rounds(runs, dense_from, engine, say=print if any(on_arms) else None)
        for folder in folders:
            if folder:
                folder.remove_checkpoint()  # a checkpoint of a round since finished, if the run was killed in between
    return [run.results for run in runs]


def _run_rounds(runs: list["_Run"], dense_from: list[Path | None], engine: str, say) -> None:
    """The rounds of several runs of one configuration but their seeds, in step: each round's
    masks, then all their arms trained together. ``say`` tells once how they train."""
    for run, dense in zip(runs, dense_from):
        run.dense_from = dense
    active, told = list(runs), set()
    for r in range(runs[0].config.rounds + 1):
        jobs = []
        for run in active:
            config = run.config
            if r > 0:
                run.mask = next_mask(config, run.trained, run.mask, run.rules.prune_layer, run.rules.layer_rates) \
                    if config.method == "imp" else run.mask_at_init(r)
            if r == 0 and run.dense_from is not None and not run.saved(0):
                run.trained = run.take_dense_round(run.dense_from, run.mask)
                continue
            run.trained, arms = run.ticket_of_round(r, run.mask, run.trained)
            arms.update(run.controls_to_train(r, run.mask))
            jobs.append((run, arms))
        _train_round(r, jobs, engine, say, told)
        # IMP prunes a collapsed ticket further: every later round of that run would be collapsed too
        active = [run for run in active if not (run.config.method == "imp" and run.collapsed(r))]


def _train_round(r: int, jobs: list[tuple["_Run", dict]], engine: str, say, told: set) -> None:
    """Train the arms of round ``r`` of every run side by side (from the killed runs' checkpoints,
    when every run holds one of this round at the same point), checkpointing each run's share as
    they go; save each ticket and rewind point; record each arm. Each arm's time is its share."""
    jobs = [(run, run.drop_collapsed(r, arms)) for run, arms in jobs]
    jobs = [(run, arms) for run, arms in jobs if arms]
    if not jobs:
        return
    first = jobs[0][0]
    names = [list(arms) for _, arms in jobs]
    saved = [run.checkpointed for run, _ in jobs]
    share_before, resume_from = 0.0, None
    if all(c is not None and c["round"] == r and c["arms"] == n for c, n in zip(saved, names)):
        try:
            resume_from, share_before = join_states([c["training"] for c in saved]), saved[0]["seconds_each"]
        except ValueError:
            pass
    for run, _ in jobs:
        run.checkpointed = None
    models = [model for _, arms in jobs for model, _ in arms.values()]
    groups, at = [], 0
    for n in names:
        groups.append(list(range(at, at + len(n))))
        at += len(n)
    data, training, k = first.data, first.training(r), first.config.rewind_iteration
    own_step = first.rules.masked_step if first.rules.masked_step is not masked_step else None
    chosen = (Engine("loop", False, "your own masked step") if own_step else
              choose_engine(engine, models, data.device, training.augment))
    if say and chosen not in told:
        told.add(chosen)
        say(f"round {r:2d}: {chosen.describe()}", flush=True)
    start = time.perf_counter()
    folders = [run.folder for run, _ in jobs]

    def share() -> float:
        return share_before + (time.perf_counter() - start) / len(models)

    def checkpoint(state: dict) -> None:
        for (run, _), part, n in zip(jobs, split_state(state, groups), names):
            run.folder.save_checkpoint({"made_with": run.made_with, "round": r, "arms": n, "seconds_each": share(),
                                        "training": part})

    desc = f"round {r} " + "+".join(names[0]) + (f" x {len(jobs)} seeds" if len(jobs) > 1 else "")
    trained = train_together(models, data, training, masks=[m for _, arms in jobs for _, m in arms.values()],
                             data_seeds=[run.config.seed for run, arms in jobs for _ in arms], engine=chosen,
                             start_iteration=0 if r == 0 else k, snapshot_at=k if r == 0 and k > 0 else None,
                             progress=first.progress, desc=desc, checkpoint=checkpoint if all(folders) else None,
                             checkpoint_every_s=first.checkpoint_every_s, resume=resume_from, step=own_step)
    seconds = share()
    for (run, arms), group in zip(jobs, groups):
        run.timings.setdefault("training", {})[f"round_{r:02d}"] = f"{len(models)} networks: {chosen.describe()}"
        run.finish_round(r, arms, [trained[i] for i in group], seconds)


def _data_of(config: ExperimentConfig, data: Splits | None) -> Splits:
    """The run's data on its device, measured on its evaluation sets; data passed in must be the config's."""
    if data is None:
        data = load_dataset(config.dataset, device=config.device, subset=config.subset)
    if data.info.name != config.dataset or len(data.train) != config.train_size:
        raise ConfigError(
            f"the data passed in ({data.info.name}, {len(data.train)} training images) is not what the "
            f"config asks for ({config.dataset}, {config.train_size})"
        )
    return data.to(config.device).with_eval_size(config.eval_images)


class _Run:
    """The steps of one IMP run, and what they share between rounds: the rewind point, the
    results and timings so far, the checkpoint a killed run left."""

    def __init__(self, config: ExperimentConfig, folder: RunFolder | None, data: Splits, results: Results,
                 rules: Rules, on_arm, progress: bool, checkpoint_every_s: float):
        self.config, self.folder, self.data, self.results, self.rules = config, folder, data, results, rules
        self.on_arm, self.progress, self.checkpoint_every_s = on_arm, progress, checkpoint_every_s
        self.timings = (folder.read_json(folder.timings) if folder else None) or {}
        self.rewind_point = self._rewind_point()
        # The checkpoint of a killed run belongs to the first round this run trains (if to any); it
        # is used only if made with these settings (a run killed in round 0 has no results.json to compare).
        self.made_with = {"config": json.loads(json.dumps(config.to_dict())), "rules": rules.describe(),
                          "eval_sets": [len(data.val), len(data.test)], "checkpoint": CHECKPOINT_FORMAT}
        self.checkpointed = folder.load_checkpoint() if folder else None
        if self.checkpointed is not None and self.checkpointed.get("made_with") != self.made_with:
            print(f"{folder.checkpoint} was made with other settings or rules: not used; its round trains from "
                  f"its start", flush=True)
            self.checkpointed = None
        self.mask, self.trained = Mask.ones_like(self.fresh()), None  # the last round's mask and trained ticket
        self.dense_from: Path | None = None  # a folder whose round 0 this run takes instead of training it

    def fresh(self) -> torch.nn.Module:
        return build_model(self.config.model, self.data.info.input_shape, self.data.info.num_classes,
                           seed=self.config.seed)

    def _rewind_point(self) -> Snapshot | None:
        """Initialisation (k = 0; written once: it is the seed's), or the weights at iteration k
        that round 0 saved (None until round 0 has trained past k)."""
        if self.config.rewind_iteration == 0:
            point = Snapshot.of(self.fresh(), 0)
            if self.folder and not self.folder.rewind_point.exists():
                self.folder.save_snapshot(point)
            return point
        folder = self.folder
        return Snapshot.load(folder.rewind_point) if folder and folder.rewind_point.exists() else None

    def finished(self, r: int, arm: str = "ticket") -> bool:
        """Whether ``arm`` of round ``r`` is done: trained, or found collapsed and not trained."""
        rounds = self.results.rounds
        return r < len(rounds) and (arm in rounds[r].arms or arm in rounds[r].collapsed)

    def collapsed(self, r: int, arm: str = "ticket") -> bool:
        rounds = self.results.rounds
        return r < len(rounds) and arm in rounds[r].collapsed

    def saved(self, r: int) -> bool:
        """Whether round ``r``'s ticket is trained and its weights on disk."""
        return self.finished(r) and self.folder is not None and self.folder.round(r).exists()

    def record(self, r: int, mask: Mask, arm: str, result: ArmResult, seconds: float) -> None:
        self._round(r, mask).arms[arm] = result
        self.timings.setdefault(f"round_{r:02d}", {})[arm] = round(seconds, 3)
        self._write()
        if self.on_arm:
            self.on_arm(r, arm, result, seconds)

    def record_collapse(self, r: int, mask: Mask, arm: str, layers: list[str]) -> None:
        """An arm whose mask left a layer empty is reported, never trained: its output cannot
        depend on its input."""
        self._round(r, mask).collapsed[arm] = layers
        self._write()
        if self.on_arm:
            print(f"round {r:2d} {arm:7s} not trained: layer collapse, {', '.join(layers)} kept no weight", flush=True)

    def _round(self, r: int, mask: Mask) -> RoundResult:
        rounds = self.results.rounds
        while len(rounds) <= r:
            rounds.append(RoundResult(len(rounds), mask.weights_remaining(),
                                      {n: v["weights_remaining"] for n, v in mask.report().items()}))
        return rounds[r]

    def _write(self) -> None:
        if self.folder:
            self.folder.write_json(self.folder.results, self.results.to_dict())
            self.folder.write_json(self.folder.timings, self.timings)

    def scores(self) -> Callable:
        """The run's score at initialisation (the learner's ``Rules.score`` when given), with what
        it needs bound: a seeded batch of ``score_images`` training images for SNIP and GraSP, the
        input's shape for SynFlow."""
        method = self.config.method
        score = self.rules.score or SCORES[method]
        if method in ("snip", "grasp"):
            train = self.data.train
            picked = torch.randperm(len(train), generator=generator("score-images", self.config.seed))
            picked = picked[:self.config.score_images].to(train.x.device)
            return functools.partial(score, images=train.x[picked], labels=train.y[picked])
        if method == "synflow":
            return functools.partial(score, input_shape=self.data.info.input_shape)
        return score

    def mask_at_init(self, r: int, *, invert: bool = False) -> Mask:
        """Round ``r``'s mask found before training: the method's score of the initial weights,
        pruned to the sparsity IMP reaches in round ``r`` (per layer, or in total with global
        pruning); its time is recorded in timings.json as the round's ``scoring``."""
        model, start = self.fresh(), time.perf_counter()
        density = density_of_round(self.config, model, r)
        try:
            mask = prune_at_init(model, self.scores(), density, scope="layerwise" if isinstance(density, dict)
                                 else "global", steps=self.config.score_steps, invert=invert)
        except ValueError as err:
            if self.rules.score is None:
                raise
            raise RuleError(f"your score: {err}") from None
        key = "scoring_inverted" if invert else "scoring"
        self.timings.setdefault(f"round_{r:02d}", {})[key] = round(time.perf_counter() - start, 3)
        return mask

    def take_dense_round(self, dense_from: str | Path, mask: Mask) -> torch.nn.Module:
        """Round 0 from another run's folder (``dense_round_of``), recorded as this run's."""
        result, state, point = dense_round_of(self.config, dense_from)
        check_eval_sets(self.data, RunFolder(dense_from), self.results, shared=True)
        trained = self.fresh()
        trained.load_state_dict(state)
        if point is not None:
            self.rewind_point = point
        if self.folder:
            if point is not None:
                self.folder.save_snapshot(point)
            self.folder.save_round(0, mask, state)
        self.record(0, mask, "ticket", result, 0.0)
        return trained

    def ticket_of_round(self, r: int, mask: Mask, trained: torch.nn.Module | None
                        ) -> tuple[torch.nn.Module, dict[str, tuple[torch.nn.Module, Mask]]]:
        """The ticket of round ``r``: as a finished round saved it (nothing to train), or where its
        training starts: initialisation in round 0; later, the rewind point, or (learning-rate
        rewinding and fine-tuning) the last round's trained weights under the new mask."""
        if self.saved(r):
            saved = self.fresh()
            saved.load_state_dict(self.folder.load_round(r)["trained"])
            return saved, {}
        if self.collapsed(r):
            return None, {}
        if r == 0:
            ticket = self.fresh()
        elif self.config.retrain == "rewind":
            ticket = self.rewound(self.fresh(), mask)
        else:
            ticket = self.fresh()
            ticket.load_state_dict(trained.state_dict())
            mask.apply_(ticket)
        return ticket, {"ticket": (ticket, mask)}

    def rewound(self, model: torch.nn.Module, mask: Mask) -> torch.nn.Module:
        rules = self.rules
        if rules.rewind is rewind_to:
            return rewind_to(model, self.rewind_point, mask)
        initial = {n: v.clone() for n, v in self.rewind_point.state.items()}
        return _checked_model("rewind", rules.rewind(model, initial, _copy(mask)), mask)

    def controls_to_train(self, r: int, mask: Mask) -> dict[str, tuple[torch.nn.Module, Mask]]:
        """The controls of round ``r`` not yet trained: ``reinit`` (the mask on fresh weights),
        ``random`` (as many weights per layer at random positions, on the rewind point), ``signs``
        and ``inverted``."""
        made = {"reinit": self.reinit, "random": self.random, "signs": self.signs,
                "inverted": lambda r, mask: self.inverted(r)}
        return {arm: made[arm](r, mask) for arm in arms_of_round(self.config, r)[1:] if not self.finished(r, arm)}

    def reinit(self, r: int, mask: Mask) -> tuple[torch.nn.Module, Mask]:
        seed, reinit = derive_seed("reinit", self.config.seed, r), self.rules.reinit
        if reinit is reinitialize:
            return reinitialize(self.fresh(), mask, seed), mask
        return _checked_model("reinit", reinit(self.fresh(), _copy(mask), seed), mask), mask

    def signs(self, r: int, mask: Mask) -> tuple[torch.nn.Module, Mask]:
        """The rewind point's signs on the reinit control's fresh magnitudes (the same seed)."""
        seed, initial = derive_seed("reinit", self.config.seed, r), self.rewind_point.state
        if self.rules.keep_signs is keep_signs:
            return reinitialize_keeping_signs(self.fresh(), initial, mask, seed), mask
        try:
            model = reinitialize_keeping_signs(self.fresh(), initial, mask, seed, self.rules.keep_signs)
        except ValueError as err:
            raise RuleError(f"your {err}") from None
        params, fresh = dict(model.named_parameters()), reinitialize(self.fresh(), mask, seed)
        for name, m in mask.items():
            kept, w = m.cpu().bool(), params[name].detach().cpu()
            if not torch.equal(w[kept].sign(), initial[name].cpu()[kept].sign()):
                raise RuleError(f"your keep_signs gave weights of {name} signs other than the initial ones")
            if not torch.equal(w[kept].abs(), fresh.get_parameter(name).detach().cpu()[kept].abs()):
                raise RuleError(f"your keep_signs did not keep the fresh magnitudes of {name}")
        return model, mask

    def random(self, r: int, mask: Mask) -> tuple[torch.nn.Module, Mask]:
        g, random_mask = generator("random-mask", self.config.seed, r), self.rules.random_mask
        if random_mask is random_mask_like:
            arm_mask = random_mask_like(mask, g)
        else:
            arm_mask = _checked_mask("random_mask", random_mask(_copy(mask), g), mask, same_counts=True)
        return self.rewound(self.fresh(), arm_mask), arm_mask

    def inverted(self, r: int) -> tuple[torch.nn.Module, Mask]:
        """Frankle et al. (2021)'s inversion: the score's lowest weights kept instead of its highest."""
        mask = self.mask_at_init(r, invert=True)
        return self.rewound(self.fresh(), mask), mask

    def training(self, r: int) -> TrainConfig:
        """Round 0 and rewinding train as configured; fine-tuning goes on at the final learning rate."""
        tc = self.config.training
        if r == 0 or self.config.retrain != "finetune":
            return tc
        return replace(tc, lr=tc.lr_at(tc.iterations - 1), warmup=0, milestones=())

    def drop_collapsed(self, r: int, arms: dict[str, tuple[torch.nn.Module, Mask]]) -> dict:
        """The arms to train: one whose mask left a layer empty is recorded as collapsed instead."""
        for arm, (_, mask) in list(arms.items()):
            if collapsed_layers(mask):
                self.record_collapse(r, mask, arm, collapsed_layers(mask))
                del arms[arm]
        return arms

    def finish_round(self, r: int, arms: dict[str, tuple[torch.nn.Module, Mask]], runs: list, seconds: float) -> None:
        """Save the trained ticket and the rewind point, record each arm, drop the checkpoint."""
        folder = self.folder
        for (arm, (model, mask)), run in zip(arms.items(), runs):
            if arm == "ticket":
                if run.snapshot is not None:
                    self.rewind_point = run.snapshot
                    if folder:
                        folder.save_snapshot(run.snapshot)
                if folder:
                    folder.save_round(r, mask, model.state_dict())
            self.record(r, mask, arm, run.result, seconds)
        if folder:
            folder.remove_checkpoint()
