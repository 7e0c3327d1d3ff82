"""Notebook 02's code exercises: one layer's magnitude pruning.

``judge_pruned`` and ``name_the_rounding`` also judge the masks of notebook 03's round of IMP, so
that both exercises name a mistake in the same words.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from lthkit.course.code_exercises.common import PAPER_RATES, Mistake, _judge, _run
from lthkit.course.verdicts import Verdict, exercise
from lthkit.masks import (
    Mask,
    count_to_prune,
    layer_rates,
    prune_by_magnitude,
    prune_layer,
)

HALF_UP = "round half up, math.floor(rate * alive + 0.5)"

# How learners round rate x alive, the count each gives, and the mistake's name: the notebook (and lthkit's
# count_to_prune) round halves up, so that a learner's IMP reproduces lthkit's bit for bit.
ROUNDINGS: dict[str, tuple[Callable[[float], int], str]] = {
    "down": (math.floor, "you rounded the count down (int() or math.floor)"),
    "up": (math.ceil, "you rounded the count up (math.ceil)"),
    "half even": (round, "you rounded an exact half to even (Python's round, torch.round, or a fractional amount "
                         "in torch.nn.utils.prune do that)"),
    "half down": (lambda x: math.ceil(x - 0.5), "you rounded an exact half down (rounding the number kept, not "
                                                "the number removed, does that)"),
    "one more": (lambda x: math.floor(x + 0.5) + 1, "you removed one weight too many (an off-by-one in your "
                                                    "count or your slice)"),
    "one fewer": (lambda x: math.floor(x + 0.5) - 1, "you removed one weight too few (an off-by-one in your "
                                                     "count or your slice)"),
}


def name_the_rounding(counts: list[tuple[float, int, int, str]]) -> None:
    """Raise ``Mistake`` when a wrong way of rounding explains every ``(rate, alive, removed, case)``: one case
    alone rarely tells floor from round-half-even, several do (or leave two candidates, both named)."""
    if all(removed == count_to_prune(rate, alive) for rate, alive, removed, _ in counts):
        return
    fits = [name for name, (rule, _) in ROUNDINGS.items()
            if all(removed == rule(rate * alive) for rate, alive, removed, _ in counts)]
    if not fits or len(fits) > 2:
        return
    rate, alive, removed, case = next(c for c in counts if c[2] != count_to_prune(c[0], c[1]))
    named = " or ".join(ROUNDINGS[f][1] for f in fits)  # two when these counts cannot tell them apart
    raise Mistake(f"{case}: {named}: you removed {removed} weights where {rate:g} x {alive} = {rate * alive:g} "
                  f"gives {count_to_prune(rate, alive)}; {HALF_UP}")


def checked_mask(new, mask: torch.Tensor, case: str) -> torch.Tensor:
    """The learner's returned mask, once it is a 0/1 tensor of the given mask's shape and dtype."""
    if not isinstance(new, torch.Tensor):
        raise Mistake(f"{case}: return the new mask as a tensor, not {type(new).__name__}")
    if new.shape != mask.shape or new.dtype != mask.dtype:
        raise Mistake(f"{case}: return a mask of the same shape and dtype as the one given ({tuple(mask.shape)}, "
                      f"{mask.dtype}), not {tuple(new.shape)}, {new.dtype}")
    if not bool(((new == 0) | (new == 1)).all()):
        raise Mistake(f"{case}: a mask holds only 0 and 1")
    return new.detach().cpu()


def _consistent(magnitude: torch.Tensor, removed: torch.Tensor, kept: torch.Tensor, dim: int) -> bool:
    """Whether, along each slice of ``dim`` (each row for dim=1), every removed weight is no larger than every
    kept one: what ranking each row (or column) on its own gives."""
    big = torch.tensor(float("inf"))
    top_removed = torch.where(removed, magnitude, -big).amax(dim=dim)
    low_kept = torch.where(kept, magnitude, big).amin(dim=dim)
    return bool((top_removed <= low_kept).all())


def _name_the_ranking(weights: torch.Tensor, removed: torch.Tensor, kept: torch.Tensor, case: str) -> None:
    """The removed weights are not the smallest magnitudes: say which ranking the learner did instead."""
    magnitude = weights.abs()
    if weights.dim() == 2 and _consistent(magnitude, removed, kept, dim=1):
        raise Mistake(f"{case}: you ranked each row separately (the rate of each row); rank the whole layer: the "
                      f"{int(removed.sum())} smallest magnitudes anywhere in it (flatten it first)")
    if weights.dim() == 2 and _consistent(magnitude, removed, kept, dim=0):
        raise Mistake(f"{case}: you ranked each column separately (the rate of each column); rank the whole "
                      f"layer: the {int(removed.sum())} smallest magnitudes anywhere in it (flatten it first)")
    if weights[removed].max() <= weights[kept].min():
        raise Mistake(f"{case}: you removed large negative weights (e.g. {weights[removed].min():g}) and kept "
                      f"smaller ones: a threshold on signed values ranks -3 below 0.1. Rank by magnitude, "
                      f"weights.abs()")
    if magnitude[removed].min() >= magnitude[kept].max():
        raise Mistake(f"{case}: you removed the largest magnitudes and kept the smallest: sort in ascending "
                      f"order (torch.argsort, or torch.topk(..., largest=False))")
    raise Mistake(f"{case}: you removed a weight of magnitude {magnitude[removed].max():g} and kept one of "
                  f"{magnitude[kept].min():g}: remove the smallest magnitudes")


def _name_the_count(weights: torch.Tensor, alive: torch.Tensor, removed: torch.Tensor, kept: torch.Tensor,
                    rate: float, case: str) -> None:
    """The right weights but not the right number of them: say why."""
    n_alive, n_removed, size = int(alive.sum()), int(removed.sum()), alive.numel()
    want, pruned, magnitude = count_to_prune(rate, n_alive), size - n_alive, weights.abs()
    if pruned and n_removed == count_to_prune(rate, size):
        raise Mistake(f"{case}: you removed {n_removed} weights, {rate:g} of all {size} in the layer; already-"
                      f"pruned weights do not count toward the rate: remove {want}, {rate:g} of the {n_alive} "
                      f"still alive")
    if pruned and n_removed < want and n_removed + pruned in {want, count_to_prune(rate, size)}:
        what = "nothing new was removed" if n_removed == 0 else f"only {n_removed} new weights were removed"
        raise Mistake(f"{case}: {what}: the {pruned} weights pruned earlier ranked among the smallest and took "
                      f"the places, and already-pruned weights must not count toward the rate; rank only the "
                      f"{n_alive} alive weights")
    if n_removed > want:
        top = magnitude[removed].max()
        if int((magnitude[alive] == top).sum()) > 1:
            raise Mistake(f"{case}: you removed {n_removed} weights instead of {want}: several weights tie at the "
                          f"threshold |w| = {top:g} and you removed all of them (|w| <= threshold). Remove exactly "
                          f"{want} (torch.argsort or torch.topk pick an exact count)")
    if n_removed < want and bool(kept.any()):
        low = magnitude[kept].min()
        if int((magnitude[kept] == low).sum()) > 1:
            raise Mistake(f"{case}: you removed {n_removed} weights instead of {want}: several weights tie at the "
                          f"threshold |w| = {low:g} and you kept all of them (|w| < threshold). Remove exactly "
                          f"{want} (torch.argsort or torch.topk pick an exact count)")
    name_the_rounding([(rate, n_alive, n_removed, case)])
    raise Mistake(f"{case}: you removed {n_removed} weights; {rate:g} of the {n_alive} alive is {rate * n_alive:g}, "
                  f"so remove {want} ({HALF_UP})")


def judge_pruned(weights: torch.Tensor, mask: torch.Tensor, rate: float, new: torch.Tensor, case: str) -> None:
    """Raise ``Mistake`` unless ``new`` is ``mask`` with the right number of smallest alive magnitudes removed;
    any order among tied magnitudes is right."""
    weights = weights.detach().cpu()
    alive, kept = mask.cpu().bool(), new.cpu().bool()
    if bool((kept & ~alive).any()):
        raise Mistake(f"{case}: weights pruned earlier came back; keep every 0 of the mask you were given "
                      f"(ignoring the mask revives pruned weights)")
    removed = alive & ~kept
    magnitude = weights.abs()
    if bool(removed.any()) and bool(kept.any()) and magnitude[removed].max() > magnitude[kept].min():
        _name_the_ranking(weights, removed, kept, case)
    if int(removed.sum()) != count_to_prune(rate, int(alive.sum())):
        _name_the_count(weights, alive, removed, kept, rate, case)


def judge_prune_layer(fn: Callable, weights: torch.Tensor, mask: torch.Tensor, rate: float, case: str) -> torch.Tensor:
    """Raise ``Mistake`` unless ``fn(weights, mask, rate)`` is a correct pruning of one layer; return its mask."""
    given = mask.clone()
    new = _run(fn, weights.clone(), given, rate)
    if not torch.equal(given, mask):
        raise Mistake(f"{case}: you changed the mask you were given in place; work on a copy (mask.clone()): "
                      f"the loop keeps the old mask")
    new = checked_mask(new, mask, case)
    judge_pruned(weights, mask, rate, new, case)
    return new


def _signed_distinct(n: int) -> torch.Tensor:
    """``n`` weights of distinct magnitudes, mixed signs, in a fixed shuffled order."""
    values = torch.arange(1, n + 1) / 10 * torch.tensor([1.0, -1.0]).repeat(n)[:n]
    return values[torch.randperm(n, generator=torch.Generator().manual_seed(n))]


# rate x alive at 2.5, 3.5, 2.6, 1.2 and 0.5: floor, ceil, round-half-even, round-half-down and an
# off-by-one each give another list of counts than rounding half up.
COUNT_CASES = [(0.25, 10), (0.5, 7), (0.2, 13), (0.2, 6), (0.125, 4)]


def _judge_counts(fn: Callable) -> None:
    """Name a wrong rounding from its counts over every fractional case at once, then judge each case."""
    counts, cases = [], []
    for rate, n in COUNT_CASES:
        case = f"case '{rate:g} of {n} weights'"
        weights, mask = _signed_distinct(n), torch.ones(n)
        given = mask.clone()
        new = checked_mask(_run(fn, weights.clone(), given, rate), mask, case)
        counts.append((rate, n, int((mask.bool() & ~new.bool()).sum()), case))
        cases.append((case, weights, mask, rate))
    name_the_rounding(counts)
    for case, weights, mask, rate in cases:
        judge_prune_layer(fn, weights, mask, rate, case)


def _prune_cases() -> list[tuple[str, torch.Tensor, torch.Tensor, float]]:
    ones = torch.ones(10)
    return [
        ("signs", torch.tensor([0.5, -3.0, 0.1, -0.2, 2.0, -0.05, 1.0, 4.0, -1.5, 0.3]), ones, 0.3),
        ("a layer pruned before", torch.tensor([0.0, 0.9, 0.0, -0.4, 0.6, 0.0, 0.2, -0.8, 0.5, 0.7]),
         torch.tensor([0.0, 1, 0, 1, 1, 0, 1, 1, 1, 1]), 0.3),
        ("pruned weights that are not zero", torch.tensor([0.01, 0.9, 0.02, -0.4, 0.6, 0.03, 0.2, -0.8, 0.5, 0.7]),
         torch.tensor([0.0, 1, 0, 1, 1, 0, 1, 1, 1, 1]), 0.3),
        ("tied magnitudes", torch.tensor([0.5, -0.5, 0.5, 0.5, 1.0, 2.0, -0.5, 3.0, 0.5, 4.0]), ones, 0.3),
        ("ties and half a weight", torch.tensor([0.5, -0.1, 0.9, -0.5, 0.5, 1.2, -0.5, 2.0, 0.7, 3.0]), ones, 0.25),
        ("a 4x4 weight matrix", torch.tensor([[0.3, 0.15, -0.65, 0.7], [0.4, -0.25, 0.05, 0.55],
                                             [0.2, -0.5, 0.1, -0.45], [0.75, -0.8, 0.35, 0.6]]), torch.ones(4, 4), 0.5),
        ("a 2-D weight matrix", torch.arange(-6.0, 6.0).reshape(3, 4) + 0.25, torch.ones(3, 4), 0.5),
        ("rate 0", torch.tensor([0.3, -0.1, 0.2, 0.4]), torch.ones(4), 0.0),
    ]


@exercise("02.prune-layer", reference=prune_layer)
def _prune_layer_exercise(fn, *, model: nn.Module | None = None) -> Verdict:
    def cases() -> str:
        _judge_counts(fn)
        for case, w, m, rate in _prune_cases():
            judge_prune_layer(fn, w, m, rate, f"case '{case}'")
        made = len(COUNT_CASES) + len(_prune_cases())
        if model is None:
            return f"passes {made} hand-made cases (pass model=model to check it on the network too)."
        params = dict(model.named_parameters())
        rates = layer_rates(model, PAPER_RATES)
        mask = Mask.ones_like(model)
        for r in (1, 2):
            for name in mask:
                judge_prune_layer(fn, params[name].detach(), mask[name], rates[name], f"round {r}, {name}")
            mask = prune_by_magnitude(model, mask, rates)
        return (f"passes {made} hand-made cases and two rounds on every layer of the trained "
                f"network ({mask.weights_remaining():.1%} of its weights left).")
    return _judge("prune_layer", cases)
