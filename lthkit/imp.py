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
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path

import torch

from lthkit import files
from lthkit.config import ConfigError, ExperimentConfig, setting_names
from lthkit.data import Splits, dataset_info, load_dataset
from lthkit.masks import (Mask, count_to_prune, layer_rates, prune_by_magnitude, prune_globally, prune_layer,
                          random_mask_like)
from lthkit.models import build_model, prunable_layers
from lthkit.prune_at_init import SCORES, collapsed_layers, prune_at_init
from lthkit.results import ArmResult, Results, RoundResult
from lthkit.rewind import Snapshot, Ticket, keep_signs, reinitialize, reinitialize_keeping_signs, rewind_to
from lthkit.run_folder import RunFolder
from lthkit.seeds import derive_seed, generator
from lthkit.stacked import ENGINES, Engine, choose_engine
from lthkit.train import TrainConfig, join_states, masked_step, split_state, train_together

CHECKPOINT_EVERY_S = 300.0  # a killed run loses at most about this much training
CHECKPOINT_FORMAT = 2  # training state per network (lthkit.train.train_together); older checkpoints are not used


@dataclass(frozen=True)
class Rules:
    """The steps of IMP a learner writes in notebooks 02-04; each defaults to lthkit's own.

    - ``prune_layer(weights, mask, rate) -> mask``: one layer's magnitude pruning;
    - ``rewind(model, initial, mask) -> model``: the ticket, the ``initial`` state dict under the mask;
    - ``reinit(model, mask, seed) -> model``: the same mask on fresh weights drawn from ``seed``;
    - ``random_mask(mask, generator) -> mask``: as many weights per layer, at random positions;
    - ``keep_signs(initial, fresh) -> tensor``: one layer's fresh magnitudes with the initial signs
      (the ``signs`` control; notebook 08);
    - ``score(model, ..., mask=mask) -> {name: scores}``: the score of a run pruning at
      initialisation, called as the method's own is (SNIP's: ``score(model, images, labels, mask=mask)``;
      notebook 07 has the learner write it);
    - ``masked_step(model, mask, optimizer, loss)``: one optimiser step that keeps pruned weights at
      zero (``lthkit.train.masked_step``; notebook 03);
    - ``layer_rates(model, kind_rates) -> {weight name: rate}``: each layer's pruning rate from the
      rates per kind (``lthkit.masks.layer_rates``; notebook 05).

    Masks are dicts of 0/1 tensors (a ``Mask`` is one). ``run_imp`` checks what each rule
    returns every round, so a broken rule stops the run with its name instead of a wrong curve.
    """

    prune_layer: Callable = prune_layer
    rewind: Callable = rewind_to
    reinit: Callable = reinitialize
    random_mask: Callable = random_mask_like
    keep_signs: Callable = keep_signs
    score: Callable | None = None
    masked_step: Callable = masked_step
    layer_rates: Callable = layer_rates

    def describe(self) -> dict[str, str]:
        """The rules that are not lthkit's, each named with a fingerprint of its code: a run
        resumed with an edited rule would otherwise mix two rules' rounds."""
        return {f.name: _fingerprint(getattr(self, f.name)) for f in fields(self)
                if getattr(self, f.name) is not f.default}


def _fingerprint(fn: Callable) -> str:
    """A rule's name and a hash of what it computes, the same in every process: a ``repr`` holds a
    memory address, so a rule that fell back to it could never be resumed."""
    inner = fn.func if isinstance(fn, functools.partial) else None
    name = f"partial({getattr(inner, '__qualname__', '')})" if inner else getattr(fn, "__qualname__", type(fn).__qualname__)
    return f"{name} {hashlib.sha256(_code_of(fn).encode()).hexdigest()[:12]}"


def _code_of(obj, seen: frozenset = frozenset()) -> str:
    """Text standing for what ``obj`` computes: a partial's function and arguments, a function's
    source (or bytecode) with its defaults, the values it closes over and the module's functions it
    calls (a helper edited is a rule edited), a callable object's class; other values their ``repr``,
    addresses removed."""
    if id(obj) in seen:
        return "<recursion>"
    seen = seen | {id(obj)}
    if isinstance(obj, functools.partial):
        return "partial(" + ", ".join([_code_of(obj.func, seen), *(_code_of(a, seen) for a in obj.args),
                                       *(f"{k}={_code_of(v, seen)}" for k, v in sorted(obj.keywords.items()))]) + ")"
    if inspect.ismethod(obj):
        return _code_of(obj.__func__, seen) + " of " + _code_of(obj.__self__, seen)
    if inspect.isfunction(obj):
        return _function_code(obj, seen)
    if isinstance(obj, torch.Tensor):
        return f"tensor {tuple(obj.shape)} {hashlib.sha256(obj.detach().cpu().contiguous().numpy().tobytes()).hexdigest()}"
    if callable(obj) and not isinstance(obj, type) and not inspect.isbuiltin(obj):
        return f"{type(obj).__qualname__}: {_source(type(obj))} {_address_free(repr(vars(obj)) if hasattr(obj, '__dict__') else '')}"
    return _address_free(repr(obj))


def _function_code(fn, seen: frozenset) -> str:
    code = fn.__code__
    def own(value) -> bool:  # a library's function is not the rule's code; the learner's helpers are
        return not inspect.isfunction(value) or value.__module__ == fn.__module__

    helpers = [fn.__globals__[name] for name in code.co_names
               if inspect.isfunction(fn.__globals__.get(name)) and own(fn.__globals__[name])]
    closure = [c.cell_contents for c in fn.__closure__ or () if _filled(c) and own(c.cell_contents)]
    return " ".join([_source(fn), *(_code_of(v, seen) for v in (fn.__defaults__ or ())),
                     *(_code_of(v, seen) for v in closure), *(_code_of(h, seen) for h in helpers)])


def _filled(cell) -> bool:
    try:
        cell.cell_contents
    except ValueError:
        return False
    return True


def _source(obj) -> str:
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):
        code = getattr(obj, "__code__", None)
        return code.co_code.hex() + _address_free(repr(code.co_consts)) if code else type(obj).__qualname__


def _address_free(text: str) -> str:
    return re.sub(r" at 0x[0-9a-fA-F]+", "", text)


class RuleError(ValueError):
    """A learner's rule (``Rules``) returned something IMP cannot use."""


def _checked_mask(rule: str, new, old: Mask, *, same_counts: bool = False) -> Mask:
    if not isinstance(new, Mapping) or set(new) != set(old):
        raise RuleError(f"your {rule} must return a mask for each of {sorted(old)}, not {type(new).__name__}")
    for name, t in new.items():
        if not isinstance(t, torch.Tensor) or t.shape != old[name].shape:
            raise RuleError(f"your {rule} returned for {name} {getattr(t, 'shape', type(t).__name__)}, "
                            f"not a tensor of shape {tuple(old[name].shape)}")
    try:
        mask = Mask(new)
    except ValueError as e:
        raise RuleError(f"your {rule}: {e}") from None
    for name in old:
        if same_counts and mask.alive(name) != old.alive(name):
            raise RuleError(f"your {rule} keeps {mask.alive(name)} weights in {name}, the ticket "
                            f"{old.alive(name)}: a control keeps as many weights in each layer")
        if not same_counts and bool((mask[name].cpu() > old[name].cpu()).any()):
            raise RuleError(f"your {rule} brought back weights of {name} that were pruned before")
    return mask


def _checked_rates(rates, mask: Mask) -> dict[str, float]:
    if not isinstance(rates, Mapping) or set(rates) != set(mask):
        got = sorted(rates) if isinstance(rates, Mapping) else type(rates).__name__
        raise RuleError(f"your layer_rates must return a rate for each of {sorted(mask)}, not {got}")
    bad = {n: r for n, r in rates.items() if not 0 <= float(r) < 1}
    if bad:
        raise RuleError(f"your layer_rates returned rates outside [0, 1): {bad}")
    return {n: float(r) for n, r in rates.items()}


def _copy(mask: Mask) -> dict[str, torch.Tensor]:
    """What a learner's rule is given: its own copy, so changing it in place harms nothing."""
    return {n: m.clone() for n, m in mask.items()}


def _checked_model(rule: str, model, mask: Mask) -> torch.nn.Module:
    if not isinstance(model, torch.nn.Module):
        raise RuleError(f"your {rule} must return the model, not {type(model).__name__}")
    params = dict(model.named_parameters())
    wrapped = [n for n in params if n.endswith("_orig")]
    if wrapped:
        raise RuleError(f"your {rule} returned a model still pruned with torch.nn.utils.prune ({wrapped[0]}): "
                        f"call torch.nn.utils.prune.remove(module, 'weight') on each layer")
    for name, m in mask.items():
        if bool((params[name].detach().cpu()[m.cpu() == 0] != 0).any()):
            raise RuleError(f"your {rule} left pruned weights of {name} non-zero: apply the mask")
    return model


def arms_of_round(config: ExperimentConfig, r: int) -> list[str]:
    return ["ticket"] + (list(config.controls) if r > 0 else [])


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


def _check_rules(rules: Rules, folder: RunFolder | None, results: Results) -> None:
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


def _check_eval_sets(data: Splits, folder: RunFolder | None, results: Results, *, shared: bool = False) -> None:
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
    train with (``auto`` resolved as ``_train_round`` resolves it) and the CPU's thread count (the
    order of a sum over threads; 1 and 2 threads part after a few hundred LeNet steps)."""
    own_step = rules.masked_step is not masked_step
    chosen = "loop" if own_step else choose_engine(engine, [model, model], torch.device(config.device),
                                                   config.training.augment).name
    return {"device": config.device, "engine": chosen, "threads": torch.get_num_threads()}


def _check_arithmetic(ours: dict, folder: RunFolder | None, results: Results, *, other_threads: bool) -> None:
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
            _check_rules(rules, folder, results)
            data = _data_of(config, data)
            _check_eval_sets(data, folder, results)
            runs.append(_Run(config, folder, data, results, rules, on_arm, progress, checkpoint_every_s))
            _check_arithmetic(arithmetic_of(config, engine, rules, runs[-1].fresh()), folder, results,
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
        _check_eval_sets(self.data, RunFolder(dense_from), self.results, shared=True)
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


def ticket_costs(out_dir: str | Path) -> dict[int, dict[str, float]]:
    """What each trained ticket of a saved run cost to find and train, by round: ``trainings``
    (IMP: every round up to it, the dense round 0 included; a score at initialisation: the
    ticket's own) and ``seconds`` of wall time (those trainings' shares of their rounds, and
    the scoring), from results.json and timings.json."""
    folder = RunFolder(out_dir)
    results = Results.load(folder.results)
    timings = folder.read_json(folder.timings) or {}
    at_init = results.config.get("method", "imp") != "imp"
    costs, spent = {}, 0.0
    for rnd in results.rounds:
        times = timings.get(f"round_{rnd.round:02d}", {})
        spent += times.get("ticket", 0.0)
        if "ticket" in rnd.arms:
            trainings = 1 if at_init else rnd.round + 1
            seconds = times.get("ticket", 0.0) + times.get("scoring", 0.0) if at_init else spent
            costs[rnd.round] = {"trainings": trainings, "seconds": round(seconds, 3)}
    return costs


def load_trained(out_dir: str | Path, r: int) -> torch.nn.Module:
    """The network of round ``r`` of a saved run as training left it (pruned weights zero)."""
    folder = RunFolder(out_dir)
    config = files.read_json(folder.results)["config"]
    info = dataset_info(config["dataset"])
    model = build_model(config["model"], info.input_shape, info.num_classes)
    model.load_state_dict(folder.load_round(r)["trained"])
    return model


def load_ticket(out_dir: str | Path, r: int) -> Ticket:
    """The ticket of round ``r`` of a saved run: that round's mask on the weights the round
    started training from, so that training it again trains what the run trained.

    With ``retrain='rewind'`` (and in round 0) those are the rewound weights (the rewind point).
    Learning-rate rewinding and fine-tuning start a later round from the last round's trained
    weights, at the rewind iteration k: the ticket holds those (fine-tuning also trains at the
    final learning rate, which a ticket does not carry).
    """
    folder = RunFolder(out_dir)
    config = files.read_json(folder.results)["config"]
    info = dataset_info(config["dataset"])
    mask = Mask.from_state_dict(folder.load_round(r)["mask"])
    retrain = config.get("retrain", "rewind")
    if r == 0 or retrain == "rewind":
        start = Snapshot.load(folder.rewind_point)
    else:
        if not folder.round(r - 1).exists():
            raise ConfigError(f"round {r} of {folder.path} ({retrain}) started from round {r - 1}'s trained weights, "
                              f"but {folder.round(r - 1).name} is missing: its ticket cannot be rebuilt")
        start = Snapshot(config.get("rewind_iteration", 0), folder.load_round(r - 1)["trained"])
    return Ticket(config["model"], info.input_shape, info.num_classes, mask, start)
