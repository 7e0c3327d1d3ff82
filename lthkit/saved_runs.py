"""A saved run read back: what each ticket cost, and a round's network or ticket."""

from __future__ import annotations

from pathlib import Path

import torch

from lthkit import files
from lthkit.config import ConfigError
from lthkit.data import dataset_info
from lthkit.masks import Mask
from lthkit.models import build_model
from lthkit.results import Results
from lthkit.rewind import Snapshot, Ticket
from lthkit.run_folder import RunFolder


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
