"""Learners' imp_round (notebook 03): prune the trained weights, rewind the survivors, train with the new mask."""

import copy
import math

import torch
from torch.nn.utils import prune

from learners import Suite

suite = Suite("03.imp-round", context=lambda get: {"data": get("mnist_small")})


def _prune(weights, mask, count, scores=None):
    scores = weights.abs() if scores is None else scores
    alive = mask.flatten().nonzero().flatten()
    smallest = alive[torch.argsort(scores.flatten()[alive], stable=True)[:count]]
    new = mask.clone().flatten()
    new[smallest] = 0
    return new.view_as(mask)


def _half_up(rate, mask):
    return math.floor(rate * int(mask.sum()) + 0.5)


def _rewind(model, initial, mask):
    model.load_state_dict(initial)
    with torch.no_grad():
        for name, m in mask.items():
            model.get_parameter(name).mul_(m)
    return model


def _round_with(name="imp_round", count=_half_up, scores=None):
    """A round (called ``name``) whose pruning counts with ``count(rate, mask)`` and ranks by ``scores(weights)``."""
    def imp_round(trained, initial, mask, rates, train):
        weights = {n: p.detach() for n, p in trained.named_parameters()}
        new_mask = {n: _prune(weights[n], mask[n], count(rates[n], mask[n]), scores and scores(weights[n]))
                    for n in mask}
        ticket = _rewind(trained, initial, new_mask)
        train(ticket, new_mask)
        return new_mask, ticket
    imp_round.__name__ = name
    return imp_round


# --- wrong -------------------------------------------------------------------------------------------


floor_count = suite.wrong(r"rounded the count down")(
    _round_with("floor_count", count=lambda r, m: int(r * int(m.sum()))))
ceil_count = suite.wrong(r"rounded the count up")(
    _round_with("ceil_count", count=lambda r, m: math.ceil(r * int(m.sum()))))
python_round = suite.wrong(r"exact half to even")(
    _round_with("python_round", count=lambda r, m: round(r * int(m.sum()))))
rate_of_all_weights = suite.wrong(r"already-pruned weights do not count")(
    _round_with("rate_of_all_weights", count=lambda r, m: math.floor(r * m.numel() + 0.5)))
signed_pruning = suite.wrong(r"signed values")(_round_with("signed_pruning", scores=lambda w: w))


@suite.wrong(r"already-pruned weights must not count")
def ranks_the_pruned_zeros(trained, initial, mask, rates, train):
    new_mask = {}
    for name, m in mask.items():
        order = torch.argsort(trained.get_parameter(name).detach().abs().flatten())
        flat = m.clone().flatten()
        flat[order[:_half_up(rates[name], m)]] = 0
        new_mask[name] = flat.view_as(m)
    ticket = _rewind(trained, initial, new_mask)
    train(ticket, new_mask)
    return new_mask, ticket


@suite.wrong(r"tie at the threshold.*removed all of them")
def threshold_takes_every_tie(trained, initial, mask, rates, train):
    new_mask = {}
    for name, m in mask.items():
        w = trained.get_parameter(name).detach().abs()
        alive = w[m.bool()]
        threshold = alive.sort().values[_half_up(rates[name], m) - 1]
        new_mask[name] = m * (w > threshold).float()
    ticket = _rewind(trained, initial, new_mask)
    train(ticket, new_mask)
    return new_mask, ticket


@suite.wrong(r"whole network together \(global pruning\)")
def prunes_globally(trained, initial, mask, rates, train):
    names = list(mask)
    scores = torch.cat([trained.get_parameter(n).detach().abs().flatten() for n in names])
    alive = torch.cat([mask[n].flatten() for n in names])
    rate = rates[names[0]]
    flat = _prune(scores, alive, _half_up(rate, alive))
    new_mask, start = {}, 0
    for n in names:
        new_mask[n] = flat[start:start + mask[n].numel()].view_as(mask[n])
        start += mask[n].numel()
    ticket = _rewind(trained, initial, new_mask)
    train(ticket, new_mask)
    return new_mask, ticket


@suite.wrong(r"whole network together \(global pruning\)")
def torch_global_unstructured(trained, initial, mask, rates, train):
    total = sum(int(m.sum()) for m in mask.values())
    params = [(trained.get_submodule(n.rsplit(".", 1)[0]), "weight") for n in mask]
    for (module, _), m in zip(params, mask.values()):
        prune.custom_from_mask(module, "weight", m)
    prune.global_unstructured(params, prune.L1Unstructured, amount=math.floor(0.2 * total + 0.5))
    new_mask = {n: module.weight_mask.detach().clone() for n, (module, _) in zip(mask, params)}
    for module, name in params:
        prune.remove(module, name)
    ticket = _rewind(trained, initial, new_mask)
    train(ticket, new_mask)
    return new_mask, ticket


@suite.wrong(r"pruned by the initial weights' magnitudes")
def rewinds_before_pruning(trained, initial, mask, rates, train):
    ticket = _rewind(trained, initial, mask)
    new_mask = {n: _prune(ticket.get_parameter(n).detach(), mask[n], _half_up(rates[n], mask[n])) for n in mask}
    ticket = _rewind(ticket, initial, new_mask)
    train(ticket, new_mask)
    return new_mask, ticket


@suite.wrong(r"started from the trained weights.*fine-tuning")
def fine_tunes(trained, initial, mask, rates, train):
    new_mask = {n: _prune(trained.get_parameter(n).detach(), mask[n], _half_up(rates[n], mask[n])) for n in mask}
    with torch.no_grad():
        for n, m in new_mask.items():
            trained.get_parameter(n).mul_(m)
    train(trained, new_mask)
    return new_mask, trained


@suite.wrong(r"biases not rewound")
def rewinds_the_weights_only(trained, initial, mask, rates, train):
    new_mask = {n: _prune(trained.get_parameter(n).detach(), mask[n], _half_up(rates[n], mask[n])) for n in mask}
    with torch.no_grad():
        for n, m in new_mask.items():
            trained.get_parameter(n).copy_(initial[n] * m)
    train(trained, new_mask)
    return new_mask, trained


@suite.wrong(r"trained without the mask")
def trains_without_the_mask(trained, initial, mask, rates, train):
    new_mask = {n: _prune(trained.get_parameter(n).detach(), mask[n], _half_up(rates[n], mask[n])) for n in mask}
    ticket = _rewind(trained, initial, new_mask)
    train(ticket, None)
    return new_mask, ticket


@suite.wrong(r"trained with the old mask")
def trains_with_the_old_mask(trained, initial, mask, rates, train):
    new_mask = {n: _prune(trained.get_parameter(n).detach(), mask[n], _half_up(rates[n], mask[n])) for n in mask}
    ticket = _rewind(trained, initial, new_mask)
    train(ticket, mask)
    return new_mask, ticket


@suite.wrong(r"called it 2 times")
def trains_twice(trained, initial, mask, rates, train):
    train(trained, mask)
    new_mask = {n: _prune(trained.get_parameter(n).detach(), mask[n], _half_up(rates[n], mask[n])) for n in mask}
    ticket = _rewind(trained, initial, new_mask)
    train(ticket, new_mask)
    return new_mask, ticket


@suite.wrong(r"ticket after training")
def returns_the_untrained_ticket(trained, initial, mask, rates, train):
    new_mask = {n: _prune(trained.get_parameter(n).detach(), mask[n], _half_up(rates[n], mask[n])) for n in mask}
    ticket = _rewind(trained, initial, new_mask)
    train(copy.deepcopy(ticket), new_mask)
    return new_mask, ticket


@suite.wrong(r"\(ticket, new_mask\): return them the other way round")
def returns_them_swapped(trained, initial, mask, rates, train):
    new_mask, ticket = _round_with()(trained, initial, mask, rates, train)
    return ticket, new_mask


@suite.wrong(r"return two things.*not dict")
def returns_the_mask_only(trained, initial, mask, rates, train):
    return _round_with()(trained, initial, mask, rates, train)[0]


@suite.wrong(r"prunes nothing")
def forgets_to_prune(trained, initial, mask, rates, train):
    ticket = _rewind(trained, initial, mask)
    train(ticket, mask)
    return mask, ticket


# --- right -------------------------------------------------------------------------------------------


@suite.right
def with_lthkit_prune_layer(trained, initial, mask, rates, train):
    from lthkit.masks import prune_layer

    weights = dict(trained.named_parameters())
    new_mask = {name: prune_layer(weights[name].detach(), mask[name], rates[name]) for name in mask}
    ticket = _rewind(trained, initial, new_mask)
    train(ticket, new_mask)
    return new_mask, ticket


@suite.right
def with_topk_and_masked_fill(trained, initial, mask, rates, train):
    new_mask = {}
    for name, m in mask.items():
        scores = trained.get_parameter(name).detach().abs().masked_fill(m == 0, float("inf")).flatten()
        flat = m.clone().flatten()
        flat[torch.topk(scores, _half_up(rates[name], m), largest=False).indices] = 0
        new_mask[name] = flat.view_as(m)
    trained.load_state_dict(initial)
    with torch.no_grad():
        for name, m in new_mask.items():
            trained.get_parameter(name).masked_fill_(m == 0, 0.0)
    train(trained, new_mask)
    return new_mask, trained


@suite.right
def on_a_fresh_copy_with_bool_masks(trained, initial, mask, rates, train):
    keep = {}
    for name, m in mask.items():
        w = trained.get_parameter(name).detach().abs().flatten()
        alive = m.flatten().bool().nonzero().flatten()
        drop = alive[torch.sort(w[alive], descending=True, stable=True).indices.flip(0)[:_half_up(rates[name], m)]]
        k = m.flatten().bool().clone()
        k[drop] = False
        keep[name] = k.view(m.shape)
    ticket = copy.deepcopy(trained)
    ticket.load_state_dict({k: v.clone() for k, v in initial.items()})
    with torch.no_grad():
        for name, k in keep.items():
            ticket.get_parameter(name).mul_(k)
    train(ticket, keep)
    return keep, ticket


@suite.right
def with_torch_prune_and_exact_counts(trained, initial, mask, rates, train):
    new_mask = {}
    for name, m in mask.items():
        module = trained.get_submodule(name.rsplit(".", 1)[0])
        prune.custom_from_mask(module, "weight", m)
        prune.l1_unstructured(module, "weight", amount=_half_up(rates[name], m))
        new_mask[name] = module.weight_mask.detach().clone()
        prune.remove(module, "weight")
    ticket = _rewind(trained, initial, new_mask)
    train(ticket, new_mask)
    return new_mask, ticket
