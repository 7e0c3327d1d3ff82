"""Instability analysis (Frankle et al. 2020, "Linear Mode Connectivity and the Lottery Ticket Hypothesis").

Train two copies of a network from the same weights (the rewind point) on two different
orders of the data, then walk the straight line between the two trained networks and
measure the error along it. If the error never rises above that of the two ends, the
copies landed in one linearly connected basin: from that point on, the noise of SGD no
longer decides the outcome. Frankle et al. found that IMP finds tickets exactly when the
rewind point is stable in this sense, which for deeper networks holds only after some
iterations of training, not at initialisation.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import torch
from torch import nn

from lthkit.data import Split, Splits
from lthkit.masks import Mask
from lthkit.rewind import Snapshot, rewind_to
from lthkit.train import TrainConfig, evaluate, train


def interpolate(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], alpha: float) -> dict[str, torch.Tensor]:
    """``(1 - alpha) a + alpha b`` for every floating-point entry of two state dicts (batch-norm
    statistics included); integer entries (batch-norm step counts) are taken from ``a``.

    The interpolated running statistics are not those the interpolated network's activations would
    have, so part of a rise along the line of a batch-norm network can come from them; recomputing
    them on training data at each point would separate the two."""
    if set(a) != set(b):
        raise ValueError("the two networks have different parameters: interpolate copies of one architecture")
    return {k: torch.lerp(a[k], b[k].to(a[k].device), alpha) if a[k].is_floating_point() else a[k] for k in a}


def error_along_line(model_a: nn.Module, model_b: nn.Module, split: Split, points: int = 11) -> list[float]:
    """Classification error (1 - accuracy) on ``split`` at ``points`` evenly spaced networks from
    ``model_a`` (first) to ``model_b`` (last)."""
    if points < 2:
        raise ValueError(f"points must be at least 2 (the two ends), got {points}")
    a, b = model_a.state_dict(), model_b.state_dict()
    probe = copy.deepcopy(model_a)
    errors = []
    for i in range(points):
        probe.load_state_dict(interpolate(a, b, i / (points - 1)))
        errors.append(1.0 - evaluate(probe, split)[1])
    return errors


STABLE_WITHIN = 0.02  # Frankle et al. (2020): a rise of at most 2 percentage points counts as stable


def instability(errors: list[float]) -> float:
    """How far the error rises along the line above the mean of its two ends (0 when stable)."""
    return max(errors) - (errors[0] + errors[-1]) / 2


def is_stable(errors: list[float], within: float = STABLE_WITHIN) -> bool:
    """Whether the error along the line stays within ``within`` of its ends (to float rounding)."""
    return round(instability(errors), 9) <= within


def train_copies(model: nn.Module, start: Snapshot, data: Splits, config: TrainConfig, *,
                 mask: Mask | None = None, data_seeds: tuple[int, int] = (1, 2), progress: bool = False
                 ) -> tuple[nn.Module, nn.Module]:
    """Two copies of ``model`` rewound to ``start`` (under ``mask``), each trained from
    ``start.iteration`` to the end on its own data order."""
    copies = []
    for seed in data_seeds:
        twin = rewind_to(copy.deepcopy(model), start, mask)
        train(twin, data, replace(config, data_seed=seed), mask=mask, start_iteration=start.iteration,
              progress=progress, desc=f"copy on data order {seed}")
        copies.append(twin)
    return copies[0], copies[1]


def errors_by_rewind_point(model: nn.Module, rewind_points: dict[int, Snapshot], data: Splits, config: TrainConfig,
                           *, mask: Mask | None = None, points: int = 11, progress: bool = False
                           ) -> dict[int, list[float]]:
    """The instability analysis over several rewind points: for each iteration k, two copies
    trained from the weights at k on different data orders, and the test error at ``points``
    networks along the line between them."""
    lines = {}
    for k, start in sorted(rewind_points.items()):
        a, b = train_copies(model, start, data, config, mask=mask, progress=progress)
        lines[k] = error_along_line(a, b, data.test, points)
    return lines
