"""Learners' prune_layer (notebook 02): one layer's magnitude pruning."""

import math

import numpy as np
import torch
from torch.nn.utils import prune

from learners import Suite

suite = Suite("02.prune-layer", context=lambda get: {"model": get("trained_lenet")})


def _prune(weights, mask, count, scores=None):
    """Zero the ``count`` alive weights of smallest score (magnitude unless given) in a copy of ``mask``."""
    scores = weights.abs() if scores is None else scores
    alive = mask.flatten().nonzero().flatten()
    smallest = alive[torch.argsort(scores.flatten()[alive], stable=True)[:count]]
    new = mask.clone().flatten()
    new[smallest] = 0
    return new.view_as(mask)


# --- wrong -------------------------------------------------------------------------------------------


@suite.wrong(r"rounded the count down")
def int_count(weights, mask, rate):
    return _prune(weights, mask, int(rate * mask.sum().item()))


@suite.wrong(r"rounded the count up")
def ceil_count(weights, mask, rate):
    return _prune(weights, mask, math.ceil(rate * int(mask.sum())))


@suite.wrong(r"exact half to even")
def python_round(weights, mask, rate):
    return _prune(weights, mask, round(rate * int(mask.sum())))


@suite.wrong(r"exact half to even.*torch\.nn\.utils\.prune")
def torch_prune_fractional_amount(weights, mask, rate):
    layer = torch.nn.Linear(1, 1)
    del layer.weight
    layer.weight = torch.nn.Parameter(weights.clone())
    prune.custom_from_mask(layer, "weight", mask)
    prune.l1_unstructured(layer, "weight", amount=rate)  # a fraction: torch rounds it with round()
    return layer.weight_mask.detach().clone()


@suite.wrong(r"exact half down")
def rounds_the_kept_count(weights, mask, rate):
    alive = int(mask.sum())
    keep = math.floor((1 - rate) * alive + 0.5)
    return _prune(weights, mask, alive - keep)


@suite.wrong(r"one weight too many")
def slice_one_too_far(weights, mask, rate):
    count = math.floor(rate * int(mask.sum()) + 0.5)
    return _prune(weights, mask, count + 1)


@suite.wrong(r"of all .* in the layer.*already-pruned weights do not count")
def rate_of_the_whole_layer(weights, mask, rate):
    return _prune(weights, mask, math.floor(rate * mask.numel() + 0.5))


@suite.wrong(r"already-pruned weights must not count")
def ranks_the_pruned_zeros(weights, mask, rate):
    count = math.floor(rate * int(mask.sum()) + 0.5)
    order = torch.argsort(weights.abs().flatten())
    new = mask.clone().flatten()
    new[order[:count]] = 0
    return new.view_as(mask)


@suite.wrong(r"signed values")
def signed_threshold(weights, mask, rate):
    return _prune(weights, mask, math.floor(rate * int(mask.sum()) + 0.5), scores=weights)


@suite.wrong(r"largest magnitudes")
def sorted_descending(weights, mask, rate):
    return _prune(weights, mask, math.floor(rate * int(mask.sum()) + 0.5), scores=-weights.abs())


@suite.wrong(r"ranked each row separately")
def per_row_argsort(weights, mask, rate):
    if weights.dim() == 1:
        return _prune(weights, mask, math.floor(rate * int(mask.sum()) + 0.5))
    new = mask.clone()
    for i in range(weights.shape[0]):
        new[i] = _prune(weights[i], mask[i], math.floor(rate * int(mask[i].sum()) + 0.5))
    return new


@suite.wrong(r"ranked each column separately")
def per_column_sort(weights, mask, rate):
    w, m = (weights, mask) if weights.dim() == 1 else (weights.T, mask.T)
    if weights.dim() == 1:
        return _prune(w, m, math.floor(rate * int(m.sum()) + 0.5))
    new = m.clone()
    for j in range(w.shape[0]):
        new[j] = _prune(w[j], m[j], math.floor(rate * int(m[j].sum()) + 0.5))
    return new.T.contiguous()


@suite.wrong(r"tie at the threshold.*removed all of them")
def threshold_with_less_or_equal(weights, mask, rate):
    alive = weights.abs()[mask.bool()]
    count = math.floor(rate * alive.numel() + 0.5)
    if count == 0:
        return mask.clone()
    threshold = alive.sort().values[count - 1]
    return mask * (weights.abs() > threshold).to(mask.dtype)


@suite.wrong(r"one weight too few")
def threshold_strictly_below_the_last_removed(weights, mask, rate):
    alive = weights.abs()[mask.bool()]
    count = math.floor(rate * alive.numel() + 0.5)
    if count == 0:
        return mask.clone()
    threshold = alive.sort().values[count - 1]
    return torch.where(weights.abs() < threshold, torch.zeros_like(mask), mask)


@suite.wrong(r"tie at the threshold.*kept all of them")
def threshold_at_the_first_kept(weights, mask, rate):
    alive = weights.abs()[mask.bool()]
    count = math.floor(rate * alive.numel() + 0.5)
    if count == 0:
        return mask.clone()
    threshold = alive.sort().values[count]
    return torch.where(weights.abs() < threshold, torch.zeros_like(mask), mask)


@suite.wrong(r"tie at the threshold.*removed all of them")
def sign_of_the_margin(weights, mask, rate):
    """torch.sign(0) is 0: a weight exactly at the threshold is removed, with every weight tied to it."""
    alive = weights.abs()[mask.bool()]
    count = math.floor(rate * alive.numel() + 0.5)
    if count == 0:
        return mask.clone()
    threshold = torch.kthvalue(alive, count).values
    return mask * torch.sign(weights.abs() - threshold).clamp(min=0)


@suite.wrong(r"changed the mask you were given in place")
def edits_the_mask(weights, mask, rate):
    mask.copy_(_prune(weights, mask, math.floor(rate * int(mask.sum()) + 0.5)))
    return mask


@suite.wrong(r"same shape and dtype.*torch\.bool")
def returns_bool(weights, mask, rate):
    return _prune(weights, mask, math.floor(rate * int(mask.sum()) + 0.5)).bool()


@suite.wrong(r"same shape and dtype.*torch\.float16")
def returns_half(weights, mask, rate):
    return _prune(weights, mask, math.floor(rate * int(mask.sum()) + 0.5)).half()


@suite.wrong(r"as a tensor, not NoneType")
def forgets_to_return(weights, mask, rate):
    new = _prune(weights, mask, math.floor(rate * int(mask.sum()) + 0.5))
    mask = new  # noqa: F841  (the learner meant to return it)


@suite.wrong(r"as a tensor, not list")
def returns_a_list(weights, mask, rate):
    return _prune(weights, mask, math.floor(rate * int(mask.sum()) + 0.5)).tolist()


@suite.wrong(r"pruned earlier came back")
def ignores_the_mask(weights, mask, rate):
    count = math.floor(rate * int(mask.sum()) + 0.5)
    return _prune(weights, torch.ones_like(mask), count)


@suite.wrong(r"pruned earlier came back")
def l1_unstructured_on_a_fresh_layer(weights, mask, rate):
    layer = torch.nn.Linear(1, 1)
    del layer.weight
    layer.weight = torch.nn.Parameter((weights * mask).clone())
    prune.l1_unstructured(layer, "weight", amount=math.floor(rate * int(mask.sum()) + 0.5))
    return layer.weight_mask.detach().clone()


# --- right -------------------------------------------------------------------------------------------


@suite.right
def with_topk(weights, mask, rate):
    count = math.floor(rate * int(mask.sum()) + 0.5)
    scores = weights.abs().masked_fill(mask == 0, float("inf")).flatten()
    drop = torch.topk(scores, count, largest=False).indices
    new = mask.clone().flatten()
    new[drop] = 0
    return new.reshape(mask.shape)


@suite.right
def with_torch_prune_and_an_exact_count(weights, mask, rate):
    layer = torch.nn.Linear(1, 1)
    del layer.weight
    layer.weight = torch.nn.Parameter(weights.detach().clone())
    prune.custom_from_mask(layer, "weight", mask)
    prune.l1_unstructured(layer, "weight", amount=math.floor(rate * int(mask.sum()) + 0.5))
    return layer.weight_mask.detach().to(mask.dtype).clone()


@suite.right
def in_float64_with_bool_masks(weights, mask, rate):
    w = weights.double().abs()
    keep = mask.bool().clone()
    count = int(np.floor(rate * keep.sum().item() + 0.5))
    alive_idx = keep.flatten().nonzero().flatten()
    order = torch.sort(w.flatten()[alive_idx], stable=True).indices
    flat = keep.flatten()
    flat[alive_idx[order[:count]]] = False
    return flat.view(mask.shape).to(mask.dtype)


@suite.right
def with_numpy(weights, mask, rate):
    w = weights.detach().cpu().numpy()
    m = mask.detach().cpu().numpy().copy()
    alive = np.flatnonzero(m)
    count = int(math.floor(rate * len(alive) + 0.5))
    drop = alive[np.argsort(np.abs(w.flatten()[alive]), kind="stable")[:count]]
    flat = m.flatten()
    flat[drop] = 0
    return torch.from_numpy(flat.reshape(m.shape)).to(mask.device)


@suite.right
def clumsy_python_loop(weights, mask, rate):
    pairs = zip(weights.flatten().tolist(), mask.flatten().tolist())
    alive = [(abs(w), i) for i, (w, m) in enumerate(pairs) if m == 1]
    alive.sort(reverse=True)  # largest first: ties among the smallest go in another order
    count = math.floor(rate * len(alive) + 0.5)
    new = mask.clone().flatten()
    for _, i in alive[len(alive) - count:]:
        new[i] = 0
    return new.view(mask.shape)


@suite.right
def threshold_then_fix_the_ties(weights, mask, rate):
    magnitude = weights.abs()
    alive = magnitude[mask.bool()]
    count = math.floor(rate * alive.numel() + 0.5)
    if count == 0:
        return mask.clone()
    threshold = torch.kthvalue(alive, count).values
    below = mask.bool() & (magnitude < threshold)
    tied = (mask.bool() & (magnitude == threshold)).flatten().nonzero().flatten()
    drop = below.flatten().clone()
    drop[tied[: count - int(below.sum())]] = True
    return torch.where(drop.view(mask.shape), torch.zeros_like(mask), mask)
