"""Notebook 02's code exercises: one layer's magnitude pruning."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from lthkit.course.code_exercises.common import PAPER_RATES, Mistake, _judge, _run
from lthkit.course.verdicts import Verdict, exercise
from lthkit.masks import Mask, count_to_prune, layer_rates, prune_by_magnitude


def _expected_counts(rate: float, alive: int) -> set[int]:
    """``count_to_prune``; at an exact half, Python's ``round`` (halves to even) is as right."""
    return {count_to_prune(rate, alive), round(rate * alive)}


def judge_prune_layer(fn: Callable, weights: torch.Tensor, mask: torch.Tensor, rate: float, case: str) -> None:
    """Raise ``Mistake`` unless ``fn(weights, mask, rate)`` is a correct pruning of one layer."""
    given = mask.clone()
    new = _run(fn, weights.clone(), given, rate)
    if not torch.equal(given, mask):
        raise Mistake(f"{case}: you changed the mask you were given in place; work on a copy (mask.clone()): "
                      f"the loop keeps the old mask")
    if not isinstance(new, torch.Tensor):
        raise Mistake(f"{case}: return the new mask as a tensor, not {type(new).__name__}")
    if new.shape != mask.shape or new.dtype != mask.dtype:
        raise Mistake(f"{case}: return a mask of the same shape and dtype as the one given ({tuple(mask.shape)}, "
                      f"{mask.dtype}), not {tuple(new.shape)}, {new.dtype}")
    if not bool(((new == 0) | (new == 1)).all()):
        raise Mistake(f"{case}: a mask holds only 0 and 1")
    alive, kept = mask.bool(), new.bool()
    if bool((kept & ~alive).any()):
        raise Mistake(f"{case}: weights pruned earlier came back; keep every 0 of the mask you were given "
                      f"(ignoring the mask revives pruned weights)")
    removed = alive & ~kept
    n_alive, n_removed, size = int(alive.sum()), int(removed.sum()), mask.numel()
    right = _expected_counts(rate, n_alive)
    magnitude = weights.abs()
    if n_removed not in right:
        want = min(right)
        if n_removed == count_to_prune(rate, size) and size != n_alive:
            raise Mistake(f"{case}: you removed {n_removed} weights, {rate:g} of all {size} in the layer; already-"
                          f"pruned weights do not count toward the rate: remove {want}, {rate:g} of the {n_alive} "
                          f"still alive")
        if n_removed == 0 and size != n_alive and want > 0:
            raise Mistake(f"{case}: nothing new was removed: the smallest magnitudes are the zeros of weights "
                          f"pruned earlier, and already-pruned weights must not count toward the rate; rank only "
                          f"the {n_alive} alive weights")
        at_threshold = magnitude[removed].max() if n_removed else None
        if n_removed > want and at_threshold is not None and int((magnitude[alive] == at_threshold).sum()) > 1:
            raise Mistake(f"{case}: you removed {n_removed} weights instead of {want}: several weights tie at the "
                          f"threshold |w| = {at_threshold:g} and you removed all of them. Remove exactly "
                          f"round({rate:g} x {n_alive}) = {want} (torch.argsort or torch.topk pick an exact count)")
        raise Mistake(f"{case}: you removed {n_removed} weights; {rate:g} of the {n_alive} alive is {want} "
                      f"(rounded to the nearest whole weight)")
    if n_removed and bool(kept.any()) and magnitude[removed].max() > magnitude[kept].min():
        signed = weights[removed].min() < 0 and weights[removed].min() < -magnitude[kept].min()
        if signed:
            raise Mistake(f"{case}: you removed large negative weights (e.g. {weights[removed].min():g}) and kept "
                          f"smaller ones: a threshold on signed values ranks -3 below 0.1. Rank by magnitude, "
                          f"weights.abs()")
        raise Mistake(f"{case}: you removed a weight of magnitude {magnitude[removed].max():g} and kept one of "
                      f"{magnitude[kept].min():g}: remove the smallest magnitudes")


def _prune_cases() -> list[tuple[str, torch.Tensor, torch.Tensor, float]]:
    ones = torch.ones(10)
    return [
        ("signs", torch.tensor([0.5, -3.0, 0.1, -0.2, 2.0, -0.05, 1.0, 4.0, -1.5, 0.3]), ones, 0.3),
        ("a layer pruned before", torch.tensor([0.0, 0.9, 0.0, -0.4, 0.6, 0.0, 0.2, -0.8, 0.5, 0.7]),
         torch.tensor([0.0, 1, 0, 1, 1, 0, 1, 1, 1, 1]), 0.3),
        ("pruned weights that are not zero", torch.tensor([0.01, 0.9, 0.02, -0.4, 0.6, 0.03, 0.2, -0.8, 0.5, 0.7]),
         torch.tensor([0.0, 1, 0, 1, 1, 0, 1, 1, 1, 1]), 0.3),
        ("tied magnitudes", torch.tensor([0.5, -0.5, 0.5, 0.5, 1.0, 2.0, -0.5, 3.0, 0.5, 4.0]), ones, 0.3),
        ("a 2-D weight matrix", torch.arange(-6.0, 6.0).reshape(3, 4) + 0.25, torch.ones(3, 4), 0.5),
        ("rate 0", torch.tensor([0.3, -0.1, 0.2, 0.4]), torch.ones(4), 0.0),
    ]


@exercise("02.prune-layer")
def _prune_layer_exercise(fn, *, model: nn.Module | None = None) -> Verdict:
    def cases() -> str:
        for case, w, m, rate in _prune_cases():
            judge_prune_layer(fn, w, m, rate, f"case '{case}'")
        if model is None:
            return f"passes {len(_prune_cases())} hand-made cases (pass model=model to check it on the network too)."
        params = dict(model.named_parameters())
        rates = layer_rates(model, PAPER_RATES)
        mask = Mask.ones_like(model)
        for r in (1, 2):
            for name in mask:
                judge_prune_layer(fn, params[name].detach(), mask[name], rates[name], f"round {r}, {name}")
            mask = prune_by_magnitude(model, mask, rates)
        return (f"passes {len(_prune_cases())} hand-made cases and two rounds on every layer of the trained "
                f"network ({mask.weights_remaining():.1%} of its weights left).")
    return _judge("prune_layer", cases)
