"""The masks of dynamic sparse training: how many weights each layer keeps, when and how many move,
and which.

A network trained sparse from the first step never has its dense weights to prune. It starts from
a random mask with a fixed number of weights per layer and, every ``update_every`` steps, moves some
of them: the ``count`` alive weights of smallest magnitude are dropped, and as many dead positions
are grown. SET (Mocanu et al. 2018) grows at random; RigL (Evci et al. 2020) grows where the
gradient of the loss is largest in magnitude, the positions whose weight would lower the loss
fastest once it may move. Each layer keeps exactly its count through every update.

Three choices follow RigL's paper and code (google-research/rigl):

- ``layer_densities``: per-layer densities ``uniform`` (every layer the same) or ``erk``
  (Erdős-Rényi-Kernel, RigL's default): a layer's density is proportional to the sum of its
  weight's dimensions over their product, so small layers stay denser; a layer that would exceed
  density 1 is made dense and the rest rescaled.
- ``update_fraction``: the fraction of each layer's alive weights that moves at step ``t`` decays on
  a cosine, ``alpha / 2 * (1 + cos(pi * t / t_end))``, and no update happens from ``t_end`` on
  (``end_fraction`` of training).
- a grown weight starts at zero, and its optimiser state (Adam's moments, SGD's momentum) is
  reset to zero, so it starts as a weight that never moved.

Dropped and grown positions are disjoint: only positions that were dead before the update are
grown. (RigL's code ranks the just-dropped positions among the candidates too, so a connection can
be dropped and grown back at once, and it then keeps its value; here exactly ``count`` connections
move.) Ties are broken by position, as everywhere in lthkit, so the same scores give the same mask.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

from lthkit.masks import Mask
from lthkit.models import prunable_layers

DISTRIBUTIONS = ("uniform", "erk")


def layer_densities(model: nn.Module, density: float, distribution: str = "erk") -> dict[str, float]:
    """The fraction of each prunable layer's weights to keep, so that ``density`` of all of them is kept."""
    if distribution not in DISTRIBUTIONS:
        raise ValueError(f"unknown distribution {distribution!r}: choose one of {', '.join(DISTRIBUTIONS)}")
    if not 0.0 < density <= 1.0:
        raise ValueError(f"density {density!r} is outside (0, 1]: it is the fraction of prunable weights kept")
    params = dict(model.named_parameters())
    shapes = {name: params[name].shape for name in prunable_layers(model)}
    if distribution == "uniform":
        return {name: float(density) for name in shapes}
    sizes = {name: math.prod(shape) for name, shape in shapes.items()}
    raw = {name: sum(shape) / sizes[name] for name, shape in shapes.items()}
    dense: set[str] = set()
    while True:
        budget = density * sum(sizes.values()) - sum(sizes[n] for n in dense)
        scale = budget / sum(raw[n] * sizes[n] for n in shapes if n not in dense)
        over = {n for n in shapes if n not in dense and scale * raw[n] > 1.0}
        if not over:
            return {n: 1.0 if n in dense else scale * raw[n] for n in shapes}
        dense |= over


def layer_counts(model: nn.Module, density: float, distribution: str = "erk") -> dict[str, int]:
    """How many weights each layer keeps: its density times its size, rounded (halves up), at least one."""
    params = dict(model.named_parameters())
    return {name: max(1, math.floor(d * params[name].numel() + 0.5))
            for name, d in layer_densities(model, density, distribution).items()}


def random_sparse_mask(model: nn.Module, counts: Mapping[str, int], generator: torch.Generator) -> Mask:
    """A mask keeping exactly ``counts[name]`` weights of each layer, at random places."""
    params = dict(model.named_parameters())
    out = {}
    for name, count in counts.items():
        flat = torch.zeros(params[name].numel())
        flat[torch.randperm(flat.numel(), generator=generator)[:count]] = 1
        out[name] = flat.view_as(params[name])
    return Mask(out)


def update_fraction(iteration: int, alpha: float, end: float) -> float:
    """RigL's cosine-decayed fraction of alive weights moved at ``iteration``: ``alpha`` at 0,
    ``alpha / 2`` halfway to ``end``, and 0 from ``end`` on."""
    if iteration >= end:
        return 0.0
    return alpha / 2 * (1 + math.cos(math.pi * iteration / end))


def update_iterations(iterations: int, every: int, end_fraction: float) -> list[int]:
    """The steps at which the mask is updated: every ``every`` steps, never at the first, and only
    before ``end_fraction`` of training."""
    end = end_fraction * iterations
    return [t for t in range(every, iterations, every) if t < end]


def moved_count(fraction: float, alive: int, size: int) -> int:
    """How many connections move in a layer with ``alive`` of ``size`` weights: ``fraction * alive``
    rounded (halves up), and never more than there are dead positions to grow into."""
    return min(math.floor(fraction * alive + 0.5), size - alive)


@torch.no_grad()
def drop_and_grow(weight: torch.Tensor, grow_scores: torch.Tensor, mask: torch.Tensor, count: int,
                  state: Mapping[str, object]) -> torch.Tensor:
    """One layer's update: a new mask without the ``count`` alive weights of smallest magnitude and
    with the ``count`` dead positions of highest ``grow_scores``.

    ``weight`` (written in place) gets zeros where connections were dropped or grown; every tensor of
    the weight's shape in the optimiser's ``state`` for this weight gets zeros at the grown positions.
    ``mask`` itself is left as it is.
    """
    flat_mask = mask.flatten()
    alive = flat_mask.nonzero().flatten()
    dead = (flat_mask == 0).nonzero().flatten()
    if not 0 <= count <= min(len(alive), len(dead)):
        raise ValueError(f"cannot move {count} connections of a layer with {len(alive)} alive and {len(dead)} dead")
    magnitude = weight.detach().flatten().abs()
    dropped = alive[torch.argsort(magnitude[alive], stable=True)[:count]]
    grown = dead[torch.argsort(-grow_scores.flatten()[dead], stable=True)[:count]]
    new = flat_mask.clone()
    new[dropped] = 0
    new[grown] = 1
    flat_weight = weight.view(-1)
    flat_weight[dropped] = 0
    flat_weight[grown] = 0
    for value in state.values():
        if isinstance(value, torch.Tensor) and value.shape == weight.shape:
            value.view(-1)[grown] = 0
    return new.view_as(mask)


def rigl_update(weight: torch.Tensor, grad: torch.Tensor, mask: torch.Tensor, count: int,
                state: Mapping[str, object]) -> torch.Tensor:
    """RigL: drop the smallest magnitudes, grow where the dense gradient ``grad`` is largest in
    magnitude (its sign says which way the weight would move, not how much it matters)."""
    return drop_and_grow(weight, grad.abs(), mask, count, state)


def set_update(weight: torch.Tensor, mask: torch.Tensor, count: int, state: Mapping[str, object],
               generator: torch.Generator) -> torch.Tensor:
    """SET: drop the smallest magnitudes, grow at random (uniform scores from ``generator``)."""
    scores = torch.rand(weight.shape, generator=generator).to(weight.device)
    return drop_and_grow(weight, scores, mask, count, state)
