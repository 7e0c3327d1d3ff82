"""Iterative magnitude pruning (IMP): train, prune, rewind, repeat, with the controls.

Round 0 trains the dense network (recorded as that round's ``ticket`` arm). Every later round takes the previous round's trained
ticket, removes the smallest-magnitude fraction of its surviving weights, rewinds the
survivors to the rewind point (initialisation, or iteration k) and trains again. With the
same mask, the controls ask whether the initialisation matters:

- ``reinit``: the same mask on fresh random weights (with late rewinding, trained over the
  same iterations k..T as the ticket, so both get the same budget);
- ``random``: a random mask with the same number of weights per layer, on the rewind point.

At round 0 every mask is full, so the controls would only repeat the dense network; they
start at round 1.

``retrain`` chooses what a later round starts from (Renda et al. 2020 compare the three):
``rewind`` (the lottery ticket: weights and learning-rate schedule back to iteration k),
``lr-rewind`` (keep the trained weights, replay the schedule from k) and ``finetune`` (keep
the trained weights, train as many iterations at the final learning rate).

The arms of a round train side by side on the same batches (``train_together``), each bit
for bit as it would alone; each arm's time in ``timings.json`` is its share of the round.

When a folder is given, each arm's result is written to ``results.json`` as soon as it is
known, and each round's mask and trained weights to ``round_NN.pt``. A killed run started
again with ``resume=True`` skips what is done and ends with the very results an
uninterrupted run gives: every random stream is seeded from ``(seed, round, arm)``.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from collections.abc import Callable
from pathlib import Path

import torch

from lthkit.config import ConfigError, ExperimentConfig
from lthkit.data import Splits, dataset_info, load_dataset
from lthkit.masks import Mask, prune_by_magnitude, prune_globally, random_mask_like
from lthkit.models import build_model, prunable_layers
from lthkit.results import ArmResult, Results, RoundResult, write_json
from lthkit.rewind import Snapshot, Ticket, reinitialize, rewind_to
from lthkit.seeds import derive_seed, generator
from lthkit.train import TrainConfig, train, train_together

RESULTS = "results.json"
TIMINGS = "timings.json"
REWIND_POINT = "rewind_point.pt"


def _round_file(r: int) -> str:
    return f"round_{r:02d}.pt"


def arms_of_round(config: ExperimentConfig, r: int) -> list[str]:
    return ["ticket"] + (list(config.controls) if r > 0 else [])


def open_run_folder(config: ExperimentConfig, out_dir: str | Path, *, resume: bool, overwrite: bool) -> Results:
    """Check ``out_dir`` before any work and return the results it already holds (maybe none)."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output folder {out} is a file: choose another --out")
    path = out / RESULTS
    ours = json.loads(json.dumps(config.to_dict()))
    if not path.exists() or overwrite:
        # Files of a run killed before its first result are stale: they may belong to other settings.
        for f in [path, out / TIMINGS, out / REWIND_POINT, *out.glob("round_*.pt")]:
            f.unlink(missing_ok=True)
        out.mkdir(parents=True, exist_ok=True)
        return Results(ours)
    previous = Results.load(path)
    if not resume:
        raise ConfigError(
            f"{out} already holds a run ({len(previous.rounds)} rounds recorded). Continue it with --resume "
            f"(resume=True), replace it with --overwrite (overwrite=True), or choose another output folder"
        )
    try:  # a run saved before a setting existed recorded it at its default
        theirs = json.loads(json.dumps(ExperimentConfig.from_dict(previous.config).to_dict()))
    except ConfigError:
        theirs = previous.config
    if theirs != ours:
        diffs = ", ".join(
            f"{k}: {ours.get(k)!r} now, {theirs.get(k)!r} there"
            for k in sorted(set(ours) | set(theirs)) if ours.get(k) != theirs.get(k)
        )
        raise ConfigError(
            f"{out} holds a run with a different configuration ({diffs}). Resume it with the same settings, "
            f"replace it with --overwrite (overwrite=True), or choose another output folder"
        )
    return previous


ROUND_0_SETTINGS = ("dataset", "model", "iterations", "batch_size", "lr", "optimizer", "momentum", "weight_decay",
                    "warmup", "milestones", "augment", "seed", "subset", "eval_every", "eval_images", "device")


def dense_round_of(config: ExperimentConfig, folder: str | Path) -> tuple[ArmResult, dict, Snapshot | None]:
    """Round 0 of the run in ``folder``, for a run with ``config``: its result, its trained weights,
    and its rewind point when ``config`` rewinds late (None when it rewinds to initialisation).

    Round 0 trains the dense network, which depends only on ``ROUND_0_SETTINGS`` (and on the
    rewind iteration, whose weights it keeps); runs that differ in anything else (the controls,
    how later rounds retrain, the pruning rates) can share it instead of training it again.
    """
    folder = Path(folder)
    if not (folder / RESULTS).exists() or not (folder / _round_file(0)).exists():
        raise ConfigError(f"{folder} holds no finished round 0 to start from: run that IMP first, or leave dense_from out")
    saved = Results.load(folder / RESULTS)
    theirs, ours = saved.config, json.loads(json.dumps(config.to_dict()))
    keys = ROUND_0_SETTINGS + (("rewind_iteration",) if config.rewind_iteration else ())
    differ = [f"{k}: {ours[k]!r} here, {theirs.get(k)!r} there" for k in keys if theirs.get(k) != ours[k]]
    if differ:
        raise ConfigError(f"the dense network in {folder} was trained with other settings ({', '.join(differ)}): "
                          f"train round 0 here instead (leave dense_from out)")
    trained = torch.load(folder / _round_file(0), weights_only=True)["trained"]
    point = Snapshot.load(folder / REWIND_POINT) if config.rewind_iteration else None
    return saved.rounds[0].arms["ticket"], trained, point


def next_mask(config: ExperimentConfig, trained: torch.nn.Module, mask: Mask) -> Mask:
    """The paper's pruning step: layer-wise rates per kind, or one global rate."""
    if config.global_pruning:
        return prune_globally(trained, mask, next(iter(config.prune_rates.values())))
    kinds = prunable_layers(trained)
    return prune_by_magnitude(trained, mask, {n: config.prune_rates[k] for n, k in kinds.items()})


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
) -> Results:
    """Run IMP as ``config`` says and return its results (also saved under ``out_dir``).

    ``on_arm(round, arm, result, seconds)`` is called after each training, for progress
    reports. ``data`` may be passed to reuse tensors already loaded. ``dense_from`` names the
    folder of a run whose round 0 this run shares (``dense_round_of``): it is taken from there,
    bit for bit what training it here would give, instead of being trained again.
    """
    out = Path(out_dir) if out_dir is not None else None
    results = open_run_folder(config, out, resume=resume, overwrite=overwrite) if out else Results(config.to_dict())
    if data is None:
        data = load_dataset(config.dataset, device=config.device, subset=config.subset)
    data = data.with_eval_size(config.eval_images)
    if data.info.name != config.dataset or len(data.train) != config.train_size:
        raise ConfigError(
            f"the data passed in ({data.info.name}, {len(data.train)} training images) is not what the "
            f"config asks for ({config.dataset}, {config.train_size})"
        )
    timings = json.loads((out / TIMINGS).read_text()) if out and (out / TIMINGS).exists() else {}
    shape, classes = data.info.input_shape, data.info.num_classes
    tc = config.train_config()
    k = config.rewind_iteration

    def fresh():
        return build_model(config.model, shape, classes, seed=config.seed)

    if k == 0:
        rewind_point = Snapshot.of(fresh(), 0)
        if out:
            rewind_point.save(out / REWIND_POINT)
    else:
        rewind_point = Snapshot.load(out / REWIND_POINT) if out and (out / REWIND_POINT).exists() else None

    def record(r: int, mask: Mask, arm: str, result: ArmResult, seconds: float) -> None:
        while len(results.rounds) <= r:
            results.rounds.append(RoundResult(
                len(results.rounds), mask.weights_remaining(),
                {n: v["weights_remaining"] for n, v in mask.report().items()},
            ))
        results.rounds[r].arms[arm] = result
        timings.setdefault(f"round_{r:02d}", {})[arm] = round(seconds, 3)
        if out:
            results.save(out / RESULTS)
            write_json(out / TIMINGS, timings)
        if on_arm:
            on_arm(r, arm, result, seconds)

    def done(r: int, arm: str) -> bool:
        return r < len(results.rounds) and arm in results.rounds[r].arms

    def control(arm: str, r: int, mask: Mask) -> tuple[torch.nn.Module, Mask]:
        model = fresh()
        if arm == "reinit":
            return reinitialize(model, mask, derive_seed("reinit", config.seed, r)), mask
        arm_mask = random_mask_like(mask, generator("random-mask", config.seed, r))
        return rewind_to(model, rewind_point, arm_mask), arm_mask

    def start_of_round(r: int, mask: Mask, trained: torch.nn.Module | None) -> torch.nn.Module:
        """Round 0 starts from initialisation; later rounds from the rewind point, or (learning-rate
        rewinding and fine-tuning) from the last round's trained weights under the new mask."""
        if r == 0:
            return fresh()
        if config.retrain == "rewind":
            return rewind_to(fresh(), rewind_point, mask)
        model = fresh()
        model.load_state_dict(trained.state_dict())
        return mask.apply_(model)

    def train_config(r: int) -> TrainConfig:
        if r == 0 or config.retrain != "finetune":
            return tc
        return replace(tc, lr=tc.lr_at(tc.iterations - 1), warmup=0, milestones=())

    mask, trained = Mask.ones_like(fresh()), None
    for r in range(config.rounds + 1):
        if r > 0:
            mask = next_mask(config, trained, mask)
        arms: dict[str, tuple[torch.nn.Module, Mask]] = {}
        if done(r, "ticket") and out and (out / _round_file(r)).exists():
            trained = fresh()
            trained.load_state_dict(torch.load(out / _round_file(r), weights_only=True)["trained"])
        elif r == 0 and dense_from is not None:
            result, state, point = dense_round_of(config, dense_from)
            trained = fresh()
            trained.load_state_dict(state)
            if point is not None:
                rewind_point = point
            if out:
                if point is not None:
                    point.save(out / REWIND_POINT)
                torch.save({"mask": mask.state_dict(), "trained": state}, out / _round_file(0))
            record(0, mask, "ticket", result, 0.0)
            continue
        else:
            trained = start_of_round(r, mask, trained)
            arms["ticket"] = (trained, mask)
        for arm in arms_of_round(config, r)[1:]:
            if not done(r, arm):
                arms[arm] = control(arm, r, mask)
        if not arms:
            continue
        start = time.perf_counter()
        runs = train_together([m for m, _ in arms.values()], data, train_config(r), masks=[m for _, m in arms.values()],
                              start_iteration=0 if r == 0 else k, snapshot_at=k if r == 0 and k > 0 else None,
                              progress=progress, desc=f"round {r} " + "+".join(arms))
        seconds = (time.perf_counter() - start) / len(arms)
        for arm, run in zip(arms, runs):
            if arm == "ticket":
                if run.snapshot is not None:
                    rewind_point = run.snapshot
                    if out:
                        rewind_point.save(out / REWIND_POINT)
                if out:
                    torch.save({"mask": mask.state_dict(),
                                "trained": {n: v.cpu() for n, v in trained.state_dict().items()}},
                               out / _round_file(r))
            record(r, mask, arm, run.result, seconds)
    return results


def print_arm(r: int, arm: str, result: ArmResult, seconds: float) -> None:
    """One line per trained network: an ``on_arm`` progress log for the CLI and the notebooks."""
    name = "dense" if r == 0 else arm
    print(f"round {r:2d} {name:7s} {result.early_stop_test_accuracy:.2%} at early stop "
          f"(iteration {result.early_stop_iteration}), {seconds:.0f} s", flush=True)


def load_ticket(out_dir: str | Path, r: int) -> Ticket:
    """The ticket of round ``r`` of a saved run: that round's mask on the rewound weights."""
    out = Path(out_dir)
    config = json.loads((out / RESULTS).read_text())["config"]
    info = dataset_info(config["dataset"])
    mask = Mask.from_state_dict(torch.load(out / _round_file(r), weights_only=True)["mask"])
    return Ticket(config["model"], info.input_shape, info.num_classes, mask, Snapshot.load(out / REWIND_POINT))



def one_shot(config: ExperimentConfig, out_dir: str | Path, r: int, *, data: Splits,
             progress: bool = True) -> tuple[Mask, ArmResult]:
    """One-shot pruning, for comparison with IMP: prune round 0's trained dense network in a
    single step to exactly the per-layer sizes of round ``r``'s mask, rewind, and train.
    """
    out = Path(out_dir)
    target = Mask.from_state_dict(torch.load(out / _round_file(r), weights_only=True)["mask"])
    shape, classes = data.info.input_shape, data.info.num_classes
    dense = build_model(config.model, shape, classes)
    dense.load_state_dict(torch.load(out / _round_file(0), weights_only=True)["trained"])
    rates = {n: (target.size(n) - target.alive(n)) / target.size(n) for n in target}
    mask = prune_by_magnitude(dense, Mask.ones_like(dense), rates)
    model = rewind_to(build_model(config.model, shape, classes), Snapshot.load(out / REWIND_POINT), mask)
    run = train(model, data, config.train_config(), mask=mask, start_iteration=config.rewind_iteration,
                progress=progress, desc=f"one-shot to round {r}")
    return mask, run.result
