"""A run's records beside its rounds: what its folder already holds and whether it may go on
(configuration, rules, evaluation sets, device, engine and threads), and the dense round 0 that
runs of other settings can share. ``lthkit.imp`` calls these before its first round."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from lthkit.config import ConfigError, ExperimentConfig, setting_names
from lthkit.data import Splits
from lthkit.results import ArmResult, Results
from lthkit.rewind import Snapshot
from lthkit.rules import Rules
from lthkit.run_folder import RunFolder
from lthkit.stacked import choose_engine
from lthkit.train import masked_step


def _recorded(config: dict) -> dict:
    """A recorded configuration as this version records it: a run saved before a setting existed
    recorded it at its default (a record that is no configuration at all is compared as it is)."""
    try:
        return json.loads(json.dumps(ExperimentConfig.from_dict(config).to_dict()))
    except (ConfigError, TypeError):
        return config


def open_run_folder(config: ExperimentConfig, out_dir: str | Path, *, resume: bool, overwrite: bool) -> Results:
    """Check ``out_dir`` before any work and return the results it already holds (maybe none).
    ``run_imp`` calls it holding the folder's lock."""
    folder = RunFolder(out_dir)
    out = folder.path
    folder.check_is_folder()
    path = folder.results
    ours = json.loads(json.dumps(config.to_dict()))
    if not path.exists() or overwrite:
        # Files of a run killed before its first result are stale: they may belong to other settings.
        # Its checkpoint is kept for a resume, which uses it only if it was made with these settings.
        folder.clear(keep_checkpoint=resume and not overwrite)
        out.mkdir(parents=True, exist_ok=True)
        return Results(ours)
    previous = Results.load(path)
    if not resume:
        raise ConfigError(
            f"{out} already holds a run ({len(previous.rounds)} rounds recorded). Continue it with --resume "
            f"(resume=True), replace it with --overwrite (overwrite=True), or choose another output folder"
        )
    theirs = _recorded(previous.config)
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


# What only the rounds after the dense one use; every other setting shapes round 0, so a setting
# added to ExperimentConfig is counted as shaping it unless it is named here. ``epochs`` is
# ``iterations`` restated, and ``rewind_iteration`` matters to round 0 only when it is not 0.
AFTER_ROUND_0 = ("rounds", "prune_rates", "global_pruning", "retrain", "controls", "method", "score_images",
                 "score_steps")
ROUND_0_SETTINGS = tuple(name for name in setting_names() if name not in AFTER_ROUND_0 + ("epochs", "rewind_iteration"))


def dense_round_of(config: ExperimentConfig, folder: str | Path) -> tuple[ArmResult, dict, Snapshot | None]:
    """Round 0 of the run in ``folder``, for a run with ``config``: its result, its trained weights,
    and its rewind point when ``config`` rewinds late (None when it rewinds to initialisation).

    Round 0 trains the dense network, which depends only on ``ROUND_0_SETTINGS`` (and on the
    rewind iteration, whose weights it keeps); runs that differ in anything else (the controls,
    how later rounds retrain, the pruning rates) can share it instead of training it again.
    """
    run = RunFolder(folder)
    folder = run.path
    if not run.results.exists() or not run.round(0).exists():
        raise ConfigError(f"{folder} holds no finished round 0 to start from: run that IMP first, or leave dense_from out")
    saved = Results.load(run.results)
    theirs, ours = _recorded(saved.config), json.loads(json.dumps(config.to_dict()))
    keys = ROUND_0_SETTINGS + (("rewind_iteration",) if config.rewind_iteration else ())
    differ = [f"{k}: {ours[k]!r} here, {theirs.get(k)!r} there" for k in keys if theirs.get(k) != ours[k]]
    if differ:
        raise ConfigError(f"the dense network in {folder} was trained with other settings ({', '.join(differ)}): "
                          f"train round 0 here instead (leave dense_from out)")
    trained = run.load_round(0)["trained"]
    point = Snapshot.load(run.rewind_point) if config.rewind_iteration else None
    return saved.rounds[0].arms["ticket"], trained, point


def check_rules(rules: Rules, folder: RunFolder | None, results: Results) -> None:
    """Refuse to resume a run made with other rules; remember the rules of this one."""
    if folder is None:
        return
    ours, path = rules.describe(), folder.rules
    theirs = folder.read_json(path) or {}
    if results.rounds and theirs != ours:
        lthkits = "lthkit's own"
        raise ConfigError(f"{folder.path} holds rounds made with other rules ({theirs or lthkits}; now {ours or lthkits}): "
                          f"replace them with overwrite=True, or choose another folder")
    if ours:
        folder.write_json(path, ours)
    else:
        path.unlink(missing_ok=True)


def check_eval_sets(data: Splits, folder: RunFolder | None, results: Results, *, shared: bool = False) -> None:
    """Refuse to resume (or, ``shared``, take round 0 from) a run measured on other validation and
    test sets; remember this run's.

    ``config.eval_images`` is compared with the rest of the config, but when it is unset the
    data passed in decides how many images measure the curves, and a resume with other data
    would mix rounds measured two ways (a run from before this record is taken as it is)."""
    if folder is None:
        return
    ours = {"val_images": len(data.val), "test_images": len(data.test)}
    theirs = folder.read_json(folder.eval_sets)
    if (results.rounds or shared) and theirs is not None and theirs != ours:
        raise ConfigError(
            f"{folder.path} holds rounds measured on {theirs['val_images']} validation and {theirs['test_images']} "
            f"test images, but the data passed in has {ours['val_images']} and {ours['test_images']}: "
            + ("train round 0 here instead (leave dense_from out), or pass the same data" if shared else
               "resume with the same data (or set eval_images), replace the run with overwrite=True, "
               "or choose another folder"))
    if theirs != ours and not shared:
        folder.write_json(folder.eval_sets, ours)


def arithmetic_of(config: ExperimentConfig, engine: str, rules: Rules, model: torch.nn.Module) -> dict:
    """What, besides the configuration, decides a run's last bits: the device, the engine the rounds
    train with (``auto`` resolved as ``lthkit.imp_runs.train_round`` resolves it) and the CPU's thread count (the
    order of a sum over threads; 1 and 2 threads part after a few hundred LeNet steps)."""
    own_step = rules.masked_step is not masked_step
    chosen = "loop" if own_step else choose_engine(engine, [model, model], torch.device(config.device),
                                                   config.training.augment).name
    return {"device": config.device, "engine": chosen, "threads": torch.get_num_threads()}


def check_arithmetic(ours: dict, folder: RunFolder | None, results: Results, *, other_threads: bool) -> None:
    """Refuse to resume rounds computed with another engine or device, or on another number of CPU
    threads unless ``other_threads`` (then say so); remember this run's."""
    if folder is None:
        return
    theirs = folder.read_json(folder.arithmetic)
    differ = [k for k in ours if theirs is not None and theirs.get(k) != ours[k]]
    if results.rounds and differ:
        said = ", ".join(f"{k} {ours[k]} now, {theirs.get(k)} there" for k in differ)
        if differ != ["threads"] or not other_threads:
            how = {"threads": f"--threads {theirs.get('threads')} (or --other-threads to go on and accept that later "
                              f"rounds differ in their last bits)",
                   "engine": f"--engine {theirs.get('engine')}", "device": f"--device {theirs.get('device')}"}
            raise ConfigError(f"{folder.path} holds rounds computed another way ({said}), which changes the last "
                              f"bits of every result: resume with {' and '.join(how[k] for k in differ)}, or "
                              f"replace the run with --overwrite")
        print(f"{folder.path}: going on with {said}: later rounds may differ in their last bits from an "
              f"uninterrupted run", flush=True)
    if theirs != ours:
        folder.write_json(folder.arithmetic, ours)
