"""Instability analysis (Frankle et al. 2020, "Linear Mode Connectivity and the Lottery Ticket Hypothesis").

Train two copies of a network from the same weights (the rewind point) on two different
orders of the data, then walk the straight line between the two trained networks and
measure the error along it. If the error never rises above that of the two ends, the
copies landed in one linearly connected basin: from that point on, the noise of SGD no
longer decides the outcome. Frankle et al. found that IMP finds tickets exactly when the
rewind point is stable in this sense, which for deeper networks holds only after some
iterations of training, not at initialisation.

Interpolating a batch-norm network also interpolates its running statistics, which are not the
statistics the interpolated network's activations have; ``recompute_bn`` measures each point of
the line with statistics recomputed on training images instead (``torch.optim.swa_utils.update_bn``,
as for averaged weights), which separates a real rise of the error from that artefact.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn
from torch.optim.swa_utils import update_bn

from lthkit.data import Split, Splits
from lthkit.masks import Mask
from lthkit.rewind import Snapshot, rewind_to
from lthkit.train import TrainConfig, evaluate, train_together

BN_BATCH_SIZE = 500  # images per forward pass when batch-norm statistics are recomputed


def interpolate(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], alpha: float) -> dict[str, torch.Tensor]:
    """``(1 - alpha) a + alpha b`` for every floating-point entry of two state dicts (batch-norm
    statistics included); integer entries (batch-norm step counts) are taken from ``a``.

    The interpolated running statistics are not those the interpolated network's activations would
    have, so part of a rise along the line of a batch-norm network can come from them; recomputing
    them on training data at each point (``error_along_line(..., recompute_bn=...)``) separates the two."""
    if set(a) != set(b):
        raise ValueError("the two networks have different parameters: interpolate copies of one architecture")
    return {k: torch.lerp(a[k], b[k].to(a[k].device), alpha) if a[k].is_floating_point() else a[k] for k in a}


@torch.no_grad()
def recompute_batch_norm(model: nn.Module, split: Split, batch_size: int = BN_BATCH_SIZE) -> nn.Module:
    """Replace ``model``'s batch-norm running statistics, in place, by their averages over the
    images of ``split`` (``torch.optim.swa_utils.update_bn``); weights are left as they are."""
    x = split.x
    device = next(model.parameters()).device
    update_bn((x[i:i + batch_size] for i in range(0, len(x), batch_size)), model, device)
    return model


def error_along_line(model_a: nn.Module, model_b: nn.Module, split: Split, points: int = 11, *,
                     recompute_bn: Split | None = None, interpolate: Callable = interpolate) -> list[float]:
    """Classification error (1 - accuracy) on ``split`` at ``points`` evenly spaced networks from
    ``model_a`` (first) to ``model_b`` (last).

    With ``recompute_bn`` (training images, such as ``data.train``), each network's batch-norm
    statistics are recomputed on those images before it is measured, the two ends included;
    without it they are interpolated like the weights. Networks without batch norm are unaffected.
    ``interpolate(a, b, alpha)`` makes each point's state dict (a learner's own, notebook 06)."""
    if points < 2:
        raise ValueError(f"points must be at least 2 (the two ends), got {points}")
    a, b = model_a.state_dict(), model_b.state_dict()
    probe = copy.deepcopy(model_a)
    errors = []
    for i in range(points):
        probe.load_state_dict(interpolate(a, b, i / (points - 1)))
        if recompute_bn is not None:  # update_bn returns at once when there is no batch norm
            recompute_batch_norm(probe, recompute_bn)
        errors.append(1.0 - evaluate(probe, split)[1])
    return errors


STABLE_WITHIN = 0.02  # Frankle et al. (2020): a rise of at most 2 percentage points counts as stable


def instability(errors: list[float]) -> float:
    """How far the error rises along the line above the mean of its two ends (0 when stable)."""
    return max(errors) - (errors[0] + errors[-1]) / 2


def is_stable(errors: list[float], within: float = STABLE_WITHIN) -> bool:
    """Whether the error along the line stays within ``within`` of its ends (to float rounding)."""
    return round(instability(errors), 9) <= within


def copy_data_seeds(seed: int) -> tuple[int, int]:
    """The data orders of an instability analysis's two copies, from the run's ``seed``
    (``TrainConfig.data_seed``): ``2 seed + 1`` and ``2 seed + 2``, so other seeds give other pairs,
    neither is the run's own order, and seed 0 keeps the pair (1, 2) that notebook 06's committed
    outputs and the reference runs were made with."""
    return 2 * seed + 1, 2 * seed + 2


def train_copies(model: nn.Module, start: Snapshot, data: Splits, config: TrainConfig, *,
                 mask: Mask | None = None, data_seeds: tuple[int, int] | None = None, progress: bool = False
                 ) -> tuple[nn.Module, nn.Module]:
    """Two copies of ``model`` rewound to ``start`` (under ``mask``), each trained from
    ``start.iteration`` to the end on its own data order: ``data_seeds``, by default drawn from
    ``config.data_seed`` (``copy_data_seeds``). They train side by side (``train_together``), each bit
    for bit as it would alone."""
    seeds = list(data_seeds if data_seeds is not None else copy_data_seeds(config.data_seed))
    copies = [rewind_to(copy.deepcopy(model), start, mask) for _ in seeds]
    train_together(copies, data, config, masks=[mask] * len(copies), data_seeds=seeds,
                   start_iteration=start.iteration, progress=progress, desc=f"copies on data orders {seeds}")
    return copies[0], copies[1]


def errors_by_rewind_point(model: nn.Module, rewind_points: dict[int, Snapshot], data: Splits, config: TrainConfig,
                           *, mask: Mask | None = None, points: int = 11, progress: bool = False,
                           recompute_bn: bool | int = False, data_seeds: tuple[int, int] | None = None,
                           interpolate: Callable = interpolate) -> dict[int, list[float]]:
    """The instability analysis over several rewind points: for each iteration k, two copies
    trained from the weights at k on different data orders (``train_copies``), and the test error
    at ``points`` networks along the line between them. ``recompute_bn`` recomputes each point's
    batch-norm statistics (``error_along_line``) on the training images: all of them (``True``)
    or the first n (an integer n, cheaper). ``interpolate`` is ``error_along_line``'s."""
    if not (isinstance(recompute_bn, bool) or (isinstance(recompute_bn, int) and recompute_bn >= 1)):
        raise ValueError(f"recompute_bn must be True, False or a positive number of images, got {recompute_bn!r}")
    bn_images = None
    if recompute_bn:
        n = None if recompute_bn is True else recompute_bn
        bn_images = Split(data.train.x[:n], data.train.y[:n])
    lines = {}
    for k, start in sorted(rewind_points.items()):
        a, b = train_copies(model, start, data, config, mask=mask, data_seeds=data_seeds, progress=progress)
        lines[k] = error_along_line(a, b, data.test, points, recompute_bn=bn_images, interpolate=interpolate)
    return lines
