"""The bookkeeping of IMP runs (``lthkit.imp`` has the algorithm): each run's folder, results and
timings, resuming from a killed run's checkpoint, the dense round shared with another run, the
checks of the learner's rules, and several seeds' runs trained in step.

``opened_runs`` opens the runs' folders (locked for as long as the runs go on) and checks that a
resume is made with the settings, rules, evaluation sets and arithmetic of the rounds already
done. ``train_round`` trains a round's arms of every run side by side (``train_together``) and
checkpoints each run's share as they go; ``ImpRun`` records what comes out.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path

import torch

from lthkit.config import ConfigError, ExperimentConfig
from lthkit.data import Splits, load_dataset
from lthkit.masks import Mask
from lthkit.models import build_model
from lthkit.prune_at_init import collapsed_layers
from lthkit.results import ArmResult, Results, RoundResult
from lthkit.rewind import Snapshot
from lthkit.rules import Rules
from lthkit.run_folder import RunFolder
from lthkit.run_records import (arithmetic_of, check_arithmetic, check_eval_sets, check_rules, dense_round_of,
                                open_run_folder)
from lthkit.stacked import ENGINES, Engine, choose_engine
from lthkit.train import TrainConfig, join_states, masked_step, split_state, train_together

CHECKPOINT_EVERY_S = 300.0  # a killed run loses at most about this much training
CHECKPOINT_FORMAT = 2  # training state per network (lthkit.train.train_together); older checkpoints are not used

Arms = dict[str, tuple[torch.nn.Module, Mask]]  # arm -> the network it trains and its mask


@contextlib.contextmanager
def opened_runs(configs: list[ExperimentConfig], folders: list[RunFolder | None], dense_from: list, on_arms: list, *,
                data: Splits | None, resume: bool, overwrite: bool, progress: bool, rules: Rules | None,
                checkpoint_every_s: float, engine: str, other_threads: bool = False) -> Iterator[list[ImpRun]]:
    """One ``ImpRun`` per config, each folder locked and checked for a resume; when the runs end
    well, a checkpoint left by a round since finished is removed."""
    if engine not in ENGINES:
        raise ConfigError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    rules = rules or Rules()
    with contextlib.ExitStack() as held:
        for folder in folders:
            if folder:
                held.enter_context(folder.locked())
        runs = []
        for config, folder, dense, on_arm in zip(configs, folders, dense_from, on_arms):
            results = open_run_folder(config, folder.path, resume=resume, overwrite=overwrite) if folder else \
                Results(config.to_dict())
            check_rules(rules, folder, results)
            data = _data_of(config, data)
            check_eval_sets(data, folder, results)
            runs.append(ImpRun(config, folder, data, results, rules, on_arm, progress, checkpoint_every_s, dense))
            check_arithmetic(arithmetic_of(config, engine, rules, runs[-1].fresh()), folder, results,
                             other_threads=other_threads)
        yield runs
        for folder in folders:
            if folder:
                folder.remove_checkpoint()


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


def train_round(r: int, jobs: list[tuple[ImpRun, Arms, TrainConfig]], engine: str, say, told: set) -> None:
    """Train the arms of round ``r`` of every run side by side, each run's with its training (the
    runs differ in their seeds alone, so the first run's settings train them all, each on its own
    data order), from the killed runs' checkpoints when every run holds one of this round at the same
    point, checkpointing each run's share as they go; save each ticket and rewind point; record each
    arm. Each arm's time is its share. ``say`` tells once per engine how the rounds train (``told``:
    the engines told so far)."""
    jobs = [(run, run.drop_collapsed(r, arms), training) for run, arms, training in jobs]
    training = next((t for _, arms, t in jobs if arms), None)
    jobs = [(run, arms) for run, arms, _ in jobs if arms]
    if not jobs:
        return
    first, names = jobs[0][0], [list(arms) for _, arms in jobs]
    resume_from, share_before = _checkpoint_of_round(r, jobs)
    models = [model for _, arms in jobs for model, _ in arms.values()]
    ends = list(itertools.accumulate(map(len, names)))
    groups = [list(range(end - len(n), end)) for n, end in zip(names, ends)]  # each run's networks in ``models``
    own_step = first.rules.masked_step if first.rules.masked_step is not masked_step else None
    chosen = (Engine("loop", False, "your own masked step") if own_step else
              choose_engine(engine, models, first.data.device, training.augment))
    if say and chosen not in told:
        told.add(chosen)
        say(f"round {r:2d}: {chosen.describe()}", flush=True)
    start = time.perf_counter()

    def share() -> float:
        return share_before + (time.perf_counter() - start) / len(models)

    def checkpoint(state: dict) -> None:
        for (run, _), part, n in zip(jobs, split_state(state, groups), names):
            run.folder.save_checkpoint({"made_with": run.made_with, "round": r, "arms": n, "seconds_each": share(),
                                        "training": part})

    k = first.config.rewind_iteration
    desc = f"round {r} " + "+".join(names[0]) + (f" x {len(jobs)} seeds" if len(jobs) > 1 else "")
    trained = train_together(models, first.data, training, masks=[m for _, arms in jobs for _, m in arms.values()],
                             data_seeds=[run.config.seed for run, arms in jobs for _ in arms], engine=chosen,
                             start_iteration=0 if r == 0 else k, snapshot_at=k if r == 0 and k > 0 else None,
                             progress=first.progress, desc=desc,
                             checkpoint=checkpoint if all(run.folder for run, _ in jobs) else None,
                             checkpoint_every_s=first.checkpoint_every_s, resume=resume_from, step=own_step)
    seconds = share()
    for (run, arms), group in zip(jobs, groups):
        run.timings.setdefault("training", {})[f"round_{r:02d}"] = f"{len(models)} networks: {chosen.describe()}"
        run.finish_round(r, arms, [trained[i] for i in group], seconds)


def _checkpoint_of_round(r: int, jobs: list[tuple[ImpRun, Arms]]) -> tuple[dict | None, float]:
    """The training state to resume round ``r`` from, joined from every run's checkpoint, and the
    seconds each arm had trained; (None, 0) unless every run holds one of this round's arms at the
    same point. Each run's checkpoint is used at most once."""
    saved = [run.checkpointed for run, _ in jobs]
    for run, _ in jobs:
        run.checkpointed = None
    if all(c is not None and c["round"] == r and c["arms"] == list(arms) for c, (_, arms) in zip(saved, jobs)):
        try:
            return join_states([c["training"] for c in saved]), saved[0]["seconds_each"]
        except ValueError:
            pass
    return None, 0.0


class ImpRun:
    """One IMP run's state between rounds (the last round's mask and trained ticket, the rewind
    point) and its records (results and timings, written to its folder as they come, and the
    checkpoint a killed run left)."""

    def __init__(self, config: ExperimentConfig, folder: RunFolder | None, data: Splits, results: Results,
                 rules: Rules, on_arm, progress: bool, checkpoint_every_s: float, dense_from: Path | None = None):
        self.config, self.folder, self.data, self.results, self.rules = config, folder, data, results, rules
        self.on_arm, self.progress, self.checkpoint_every_s = on_arm, progress, checkpoint_every_s
        self.dense_from = dense_from  # a folder whose round 0 this run takes instead of training it
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

    def fresh(self) -> torch.nn.Module:
        """The run's network at initialisation (its seed's)."""
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

    def arm_done(self, r: int, arm: str = "ticket") -> bool:
        """Whether ``arm`` of round ``r`` has its outcome recorded: trained, or found collapsed and not trained."""
        rounds = self.results.rounds
        return r < len(rounds) and (arm in rounds[r].arms or arm in rounds[r].collapsed)

    def collapsed(self, r: int, arm: str = "ticket") -> bool:
        rounds = self.results.rounds
        return r < len(rounds) and arm in rounds[r].collapsed

    def saved(self, r: int) -> bool:
        """Whether round ``r``'s ticket is trained and its weights on disk."""
        return self.arm_done(r) and self.folder is not None and self.folder.round(r).exists()

    def saved_ticket(self, r: int) -> torch.nn.Module:
        """Round ``r``'s trained ticket, read back from the run's folder."""
        ticket = self.fresh()
        ticket.load_state_dict(self.folder.load_round(r)["trained"])
        return ticket

    def record(self, r: int, mask: Mask, arm: str, result: ArmResult, seconds: float) -> None:
        self._round(r, mask).arms[arm] = result
        self.timings.setdefault(f"round_{r:02d}", {})[arm] = round(seconds, 3)
        self._write()
        if self.on_arm:
            self.on_arm(r, arm, result, seconds)

    def record_time(self, r: int, what: str, seconds: float) -> None:
        """Seconds round ``r`` spent on ``what`` besides training (scoring the weights at initialisation)."""
        self.timings.setdefault(f"round_{r:02d}", {})[what] = round(seconds, 3)

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

    def take_dense_round(self, mask: Mask) -> torch.nn.Module:
        """Round 0 from the folder of the run this one shares it with (``dense_from``, read by
        ``dense_round_of``), recorded as this run's."""
        result, state, point = dense_round_of(self.config, self.dense_from)
        check_eval_sets(self.data, RunFolder(self.dense_from), self.results, shared=True)
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

    def drop_collapsed(self, r: int, arms: Arms) -> Arms:
        """The arms to train: one whose mask left a layer empty is recorded as collapsed instead."""
        for arm, (_, mask) in list(arms.items()):
            if collapsed_layers(mask):
                self.record_collapse(r, mask, arm, collapsed_layers(mask))
                del arms[arm]
        return arms

    def finish_round(self, r: int, arms: Arms, runs: list, seconds: float) -> None:
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
