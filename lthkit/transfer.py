"""Tickets that travel (Morcos et al. 2019): a ticket found in one run, trained in another.

A ticket is a mask *and* the weights its survivors had at the rewind point. Moving it to another
dataset or optimiser keeps both: the source run's mask of a round, on the source run's rewound
weights, neither its trained weights (that would be fine-tuning, not a ticket) nor the target's
own initialisation (that would be the mask alone). ``run_transfer`` trains that ticket in the
target's configuration, round by round, beside:

- ``own``: the target's own ticket of the same round, from an IMP run on the target (shared, not
  trained again, as ``run_imp``'s ``dense_from`` shares round 0; that run's round 0 is this run's);
- ``random``: a random mask with as many weights per layer, on the ticket's initial weights;
- ``reinit``: the ticket's mask on fresh weights.

The result is a run folder like ``run_imp``'s (results.json, rewind_point.pt, round_NN.pt, with
``ticket`` the transferred ticket), so plots, sweeps, ``collect``, ``load_ticket`` and ``export``
read it unchanged; ``transfer.json`` records where the ticket came from.

A ticket must fit the target's network: a weight of another shape is refused, naming the layer
and both shapes, with one exception. When only the output layer differs (another number of
classes), it cannot carry over: it takes the target's own initial weights, pruned at random
(seeded) to the fraction of weights the ticket keeps in its output layer.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import re
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from lthkit.config import ConfigError, ExperimentConfig
from lthkit.data import Splits, load_dataset
from lthkit.run_records import dense_round_of, open_run_folder
from lthkit.masks import Mask, random_mask_like
from lthkit.models import build_model, prunable_layers
from lthkit.results import ArmResult, Results, RoundResult
from lthkit.rewind import Snapshot, reinitialize, rewind_to
from lthkit.run_folder import RunFolder
from lthkit.seeds import derive_seed, generator
from lthkit.train import train_together

TRANSFER = "transfer.json"
CONTROLS = ("random", "reinit")


def transfer_ticket(model: nn.Module, mask: dict, initial: dict, trained: dict) -> nn.Module:
    """The ticket in the target's network ``model``: the ticket's ``initial`` weights (its rewind
    point, a state dict) under its ``mask``; ``trained`` (the source's trained weights) and
    ``model``'s own initial values are not used. Notebook 11 has the learner write this function."""
    return rewind_to(model, initial, Mask(mask))


def parse_ticket_from(text: str) -> tuple[Path, int | None]:
    """``RUN`` (every round of the run) or ``RUN:ROUND`` (that round's ticket alone)."""
    match = re.fullmatch(r"(.+?)(?::(\d+))?", str(text))
    return Path(match.group(1)), int(match.group(2)) if match.group(2) is not None else None


def output_layer(model: nn.Module) -> str | None:
    """The module name of the layer that gives the classes (its weight's kind is ``output``)."""
    names = [n for n, kind in prunable_layers(model).items() if kind == "output"]
    return names[0].rsplit(".", 1)[0] if names else None


def fit_ticket(mask: Mask, initial: dict[str, torch.Tensor], target: nn.Module, g: torch.Generator
               ) -> tuple[Mask, dict[str, torch.Tensor]]:
    """The ticket (``mask`` and ``initial`` state) as the target network ``target`` (at its own
    initialisation) can take it. Every entry must have the target's shape, except the output layer's
    when the classes differ: that layer gets the target's initial values and a random mask (from
    ``g``) keeping the fraction of weights the ticket keeps there. Anything else is refused,
    naming the layer and both shapes."""
    own, out = target.state_dict(), output_layer(target)
    missing = sorted(set(own) - set(initial)) + sorted(set(mask) - set(own))
    if missing:
        raise ConfigError(f"the ticket has no {missing[0]} of the target's network (or the target no such layer): "
                          f"a ticket moves only between networks of the same architecture")
    fitted, state = {}, {}
    for name, value in own.items():
        theirs = initial[name]
        if theirs.shape == value.shape:
            state[name] = theirs.detach().clone()
            continue
        if out is None or not name.startswith(out + "."):
            raise ConfigError(f"the ticket does not fit the target's network: {name} is {tuple(theirs.shape)} in the "
                              f"ticket and {tuple(value.shape)} in the target (another input shape?); only the output "
                              f"layer may differ (another number of classes)")
        state[name] = value.detach().clone()
    for name, m in mask.items():
        if m.shape == own[name].shape:
            fitted[name] = m.clone()
            continue
        keep = round(m.sum().item() / m.numel() * own[name].numel())
        fitted[name] = random_mask_like(Mask({name: _first_ones(own[name].shape, keep)}), g)[name]
    return Mask(fitted), state


def _first_ones(shape: torch.Size, count: int) -> torch.Tensor:
    flat = torch.zeros(shape.numel())
    flat[:count] = 1
    return flat.view(shape)


def fingerprint(fn: Callable) -> str:
    """A transfer function's name and a hash of its source: a run resumed with an edited function
    would otherwise mix two functions' rounds."""
    try:
        code = inspect.getsource(getattr(fn, "learners_own", fn))
    except (OSError, TypeError):
        code = getattr(fn, "__qualname__", type(fn).__qualname__)
    return f"{getattr(fn, '__qualname__', type(fn).__qualname__)} {hashlib.sha256(code.encode()).hexdigest()[:12]}"


def run_transfer(config: ExperimentConfig, ticket_from: str | Path, own_from: str | Path,
                 out_dir: str | Path | None = None, *, rounds: list[int] | None = None, data: Splits | None = None,
                 resume: bool = False, overwrite: bool = False, progress: bool = True,
                 on_arm: Callable[[int, str, ArmResult, float], None] | None = None,
                 transfer: Callable = transfer_ticket, engine: str = "auto") -> Results:
    """Train the tickets of the run in ``ticket_from`` in the target's ``config`` (its dataset,
    optimiser, schedule and seed), beside the target's own tickets from the IMP run in ``own_from``
    (made with ``config``: its round 0 is shared, its tickets recorded as ``own``) and
    ``config.controls`` (``random``, ``reinit``). ``rounds``: the source's rounds to transfer
    (default 1 to ``config.rounds``). ``transfer(model, mask, initial, trained) -> model`` builds the
    ticket in the target's network (``transfer_ticket``, or a learner's own).

    Written to ``out_dir`` as each round finishes; ``resume`` skips the finished rounds (a round
    killed halfway trains again from its start). ``on_arm`` is ``run_imp``'s.
    """
    source, own = RunFolder(ticket_from), RunFolder(own_from)
    rounds = list(rounds) if rounds is not None else list(range(1, config.rounds + 1))
    controls = tuple(config.controls)
    if set(controls) - set(CONTROLS):
        other = ", ".join(sorted(set(controls) - set(CONTROLS)))
        raise ConfigError(f"a transfer trains the controls {', '.join(CONTROLS)}, not {other}")
    if not rounds or any(r < 1 for r in rounds):
        raise ConfigError(f"transfer the tickets of rounds 1 and later (round 0 is the dense network), not {rounds}")
    src_config = _source_config(source, rounds)
    if src_config.get("rewind_iteration", 0) != config.rewind_iteration:
        raise ConfigError(f"the ticket in {source.path} rewinds to iteration {src_config.get('rewind_iteration', 0)}, "
                          f"the target to {config.rewind_iteration}: give the target --rewind-iteration "
                          f"{src_config.get('rewind_iteration', 0)}, so that every arm trains the same iterations")
    record = {"ticket_from": str(source.path), "source_config": src_config, "own_from": str(own.path),
              "rounds": rounds, "transfer": fingerprint(transfer)}
    folder = RunFolder(out_dir) if out_dir is not None else None
    data = data if data is not None else load_dataset(config.dataset, device=config.device, subset=config.subset)
    data = data.to(config.device).with_eval_size(config.eval_images)
    if data.info.name != config.dataset or len(data.train) != config.train_size:
        raise ConfigError(f"the data passed in ({data.info.name}, {len(data.train)} training images) are not what the "
                          f"config asks for ({config.dataset}, {config.train_size})")
    with folder.locked() if folder else contextlib.nullcontext():
        results = open_run_folder(config, folder.path, resume=resume, overwrite=overwrite) if folder else \
            Results(config.to_dict())
        if folder:
            _check_record(folder, record, results)
        own_results = _own_run(config, own, data, rounds)
        timings = (folder.read_json(folder.timings) if folder else None) or {}
        start = Snapshot.load(source.rewind_point)
        if not results.rounds:
            results.rounds.append(_round(0, Mask.ones_like(_fresh(config, data))))
            results.rounds[0].arms["ticket"] = own_results.rounds[0].arms["ticket"]
            _write(folder, results, timings)
            if on_arm:
                on_arm(0, "ticket", results.rounds[0].arms["ticket"], 0.0)
        for r in rounds:
            if any(rr.round == r for rr in results.rounds):
                continue
            src_mask = Mask.from_state_dict(source.load_round(r)["mask"])
            fresh = _fresh(config, data)
            mask, initial = fit_ticket(src_mask, start.state, fresh, generator("transfer-output", config.seed))
            if folder and not folder.rewind_point.exists():
                folder.save_snapshot(Snapshot(start.iteration, initial))
            _check_same_counts(mask, Mask.from_state_dict(own.load_round(r)["mask"]), own.path, r)
            trained = {n: v for n, v in source.load_round(r)["trained"].items()
                       if n in initial and v.shape == initial[n].shape}  # an adapted output layer has none
            arms = {"ticket": (_yours(transfer, fresh, mask, initial, trained), mask)}
            if "random" in controls:
                random = random_mask_like(mask, generator("random-mask", config.seed, r))
                arms["random"] = (rewind_to(_fresh(config, data), initial, random), random)
            if "reinit" in controls:
                arms["reinit"] = (reinitialize(_fresh(config, data), mask, derive_seed("reinit", config.seed, r)), mask)
            began = time.perf_counter()
            runs = train_together([m for m, _ in arms.values()], data, config.training,
                                  masks=[m for _, m in arms.values()], data_seeds=[config.seed] * len(arms),
                                  engine=engine, start_iteration=config.rewind_iteration, progress=progress,
                                  desc=f"transfer round {r} " + "+".join(arms))
            seconds = (time.perf_counter() - began) / len(arms)
            rnd = _round(r, mask)
            for (arm, (model, _)), run in zip(arms.items(), runs):
                rnd.arms[arm] = run.result
                if arm == "ticket" and folder:
                    folder.save_round(r, mask, model.state_dict())
            rnd.arms["own"] = own_results.rounds[_index(own_results, r)].arms["ticket"]
            results.rounds.append(rnd)
            timings[f"round_{r:02d}"] = {arm: round(seconds, 3) for arm in arms}
            _write(folder, results, timings)
            if on_arm:
                for arm, result in rnd.arms.items():
                    on_arm(r, arm, result, 0.0 if arm == "own" else seconds)
    return results


def _source_config(source: RunFolder, rounds: list[int]) -> dict:
    if not source.results.exists() or not source.rewind_point.exists():
        raise ConfigError(f"{source.path} holds no IMP run to take a ticket from (no results.json or rewind_point.pt)")
    config = Results.load(source.results).config
    if config.get("retrain", "rewind") != "rewind":
        raise ConfigError(f"the run in {source.path} retrains with {config['retrain']}: its later rounds start from "
                          f"trained weights, so they are no tickets to move; take one made with retrain=rewind")
    for r in rounds:
        if not source.round(r).exists():
            raise ConfigError(f"{source.path} holds no round {r} ({source.round(r).name} is missing): choose a round "
                              f"the run has finished, or run it further with --resume")
    return config


def _own_run(config: ExperimentConfig, own: RunFolder, data: Splits, rounds: list[int]) -> Results:
    """The target's IMP run: made with ``config``'s round-0 settings on the same evaluation sets, and
    holding every round to transfer."""
    dense_round_of(config, own.path)  # refuses a run made with other settings, naming them
    sets = own.read_json(own.eval_sets)
    if sets is not None and sets != {"val_images": len(data.val), "test_images": len(data.test)}:
        raise ConfigError(f"{own.path} was measured on {sets['val_images']} validation and {sets['test_images']} test "
                          f"images, this transfer on {len(data.val)} and {len(data.test)}: pass the same data")
    results = Results.load(own.results)
    for r in rounds:
        if _index(results, r) is None or not own.round(r).exists():
            raise ConfigError(f"{own.path} holds no round {r} of the target's own IMP: run it to round {r} "
                              f"(lthkit imp --rounds {max(rounds)} --resume --out {own.path})")
    return results


def _index(results: Results, r: int) -> int | None:
    return next((i for i, rr in enumerate(results.rounds) if rr.round == r and "ticket" in rr.arms), None)


def _check_same_counts(mask: Mask, own: Mask, path: Path, r: int) -> None:
    if mask.alive() != own.alive():
        raise ConfigError(f"round {r}'s ticket keeps {mask.alive()} weights, the target's own ticket in {path} "
                          f"{own.alive()}: prune both runs at the same rates, so that round {r} has one sparsity")


def _check_record(folder: RunFolder, record: dict, results: Results) -> None:
    path = folder.path / TRANSFER
    theirs = folder.read_json(path)
    ours = json.loads(json.dumps(record))
    if results.rounds and theirs is not None and theirs != ours:
        differ = ", ".join(k for k in ours if ours[k] != theirs.get(k))
        raise ConfigError(f"{folder.path} holds a transfer of another ticket or made another way ({differ} differ): "
                          f"resume it as it was made, replace it (--overwrite), or choose another folder")
    folder.write_json(path, ours)


def _fresh(config: ExperimentConfig, data: Splits) -> nn.Module:
    return build_model(config.model, data.info.input_shape, data.info.num_classes, seed=config.seed)


def _yours(transfer: Callable, model: nn.Module, mask: Mask, initial: dict, trained: dict) -> nn.Module:
    """The transferred ticket, built by ``transfer`` from copies (a function that edits what it is
    given harms nothing), checked: a model, pruned weights zero."""
    out = transfer(model, {n: m.clone() for n, m in mask.items()}, {n: v.clone() for n, v in initial.items()},
                   {n: v.clone() for n, v in trained.items()})
    if not isinstance(out, nn.Module):
        raise ConfigError(f"your transfer must return the model, not {type(out).__name__}")
    params = dict(out.named_parameters())
    for name, m in mask.items():
        if bool((params[name].detach().cpu()[m.cpu() == 0] != 0).any()):
            raise ConfigError(f"your transfer left pruned weights of {name} non-zero: apply the mask")
    return out


def _round(r: int, mask: Mask) -> RoundResult:
    return RoundResult(r, mask.weights_remaining(), {n: v["weights_remaining"] for n, v in mask.report().items()})


def _write(folder: RunFolder | None, results: Results, timings: dict) -> None:
    if folder:
        folder.write_json(folder.results, results.to_dict())
        folder.write_json(folder.timings, timings)
