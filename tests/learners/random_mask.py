"""Learners' random_mask (notebook 04): as many weights per layer as the ticket, at uniformly drawn positions."""

import torch

from learners import Suite

suite = Suite("04.random-mask", context=lambda get: {})


def _scatter(m, positions):
    flat = torch.zeros(m.numel(), dtype=m.dtype)
    flat[positions] = 1
    return flat.view_as(m)


# --- wrong -------------------------------------------------------------------------------------------


@suite.wrong(r"keeps the ticket's number of weights in each row.*which pixels and units matter")
def permutes_the_rows(mask, generator):
    return {n: m[torch.randperm(m.shape[0], generator=generator)] for n, m in mask.items()}


@suite.wrong(r"keeps the ticket's number of weights in each .*column.*which pixels and units matter")
def permutes_the_columns(mask, generator):
    return {n: m[:, torch.randperm(m.shape[1], generator=generator)] for n, m in mask.items()}


@suite.wrong(r"keeps the ticket's number of weights in each .*shifting, flipping or rolling")
def rolls_the_flat_mask(mask, generator):
    out = {}
    for n, m in mask.items():
        shift = int(torch.randint(1, m.numel(), (1,), generator=generator))
        out[n] = torch.roll(m.flatten(), shift).view_as(m)
    return out


@suite.wrong(r"keeps the ticket's number of weights in each row")
def shuffles_within_each_row(mask, generator):
    out = {}
    for n, m in mask.items():
        rows = [row[torch.randperm(row.numel(), generator=generator)] for row in m]
        out[n] = torch.stack(rows)
    return out


@suite.wrong(r"keeps the ticket's number of weights in each")
def flips_the_mask(mask, generator):
    dims = [0] if float(torch.rand(1, generator=generator)) < 0.5 else [1]
    return {n: torch.flip(m, dims) for n, m in mask.items()}


@suite.wrong(r"varies \d+ times as much as in a uniform draw.*which pixels and units matter")
def transposes_and_reshapes(mask, generator):
    out = {}
    for n, m in mask.items():
        t = m.T.contiguous().view(m.shape)
        out[n] = torch.roll(t, int(torch.randint(1, m.shape[0], (1,), generator=generator)), 0)
    return out


@suite.wrong(r"nearly the same number of weights.*evenly spaced")
def evenly_spaced_from_a_random_start(mask, generator):
    out = {}
    for n, m in mask.items():
        k, size = int(m.sum()), m.numel()
        start = int(torch.randint(0, size, (1,), generator=generator))
        out[n] = _scatter(m, (torch.arange(k) * size // k + start) % size)
    return out


@suite.wrong(r"you avoided the ticket's positions")
def draws_among_the_pruned_positions(mask, generator):
    out = {}
    for n, m in mask.items():
        free = (m.flatten() == 0).nonzero().flatten()
        out[n] = _scatter(m, free[torch.randperm(len(free), generator=generator)[: int(m.sum())]])
    return out


@suite.wrong(r"only on average")
def bernoulli_with_the_right_probability(mask, generator):
    return {n: torch.bernoulli(torch.full_like(m, float(m.mean())), generator=generator) for n, m in mask.items()}


@suite.wrong(r"only on average")
def uniform_below_the_density(mask, generator):
    return {n: (torch.rand(m.shape, generator=generator) < m.mean()).to(m.dtype) for n, m in mask.items()}


@suite.wrong(r"the total is right but not each layer's count")
def shuffles_across_layers(mask, generator):
    flat = torch.cat([m.flatten() for m in mask.values()])
    flat = flat[torch.randperm(flat.numel(), generator=generator)]
    out, start = {}, 0
    for n, m in mask.items():
        out[n] = flat[start:start + m.numel()].view_as(m)
        start += m.numel()
    return out


@suite.wrong(r"kept as many weights as the ticket prunes")
def keeps_as_many_as_pruned(mask, generator):
    return {n: _scatter(m, torch.randperm(m.numel(), generator=generator)[: int((m == 0).sum())])
            for n, m in mask.items()}


@suite.wrong(r"two calls with equal generators gave different masks")
def ignores_the_generator(mask, generator):
    return {n: m.flatten()[torch.randperm(m.numel())].view_as(m) for n, m in mask.items()}


@suite.wrong(r"two different generators gave the same mask")
def its_own_generator(mask, generator):
    g = torch.Generator().manual_seed(0)
    return {n: _scatter(m, torch.randperm(m.numel(), generator=g)[: int(m.sum())]) for n, m in mask.items()}


@suite.wrong(r"returned the ticket's own mask")
def returns_a_copy_of_the_ticket(mask, generator):
    return {n: m.clone() for n, m in mask.items()}


@suite.wrong(r"changed the ticket's mask in place")
def shuffles_in_place(mask, generator):
    for m in mask.values():
        m.view(-1).copy_(m.flatten()[torch.randperm(m.numel(), generator=generator)])
    return mask


@suite.wrong(r"shape and dtype .*torch\.float32")
def returns_bool_masks(mask, generator):
    return {n: _scatter(m, torch.randperm(m.numel(), generator=generator)[: int(m.sum())]).bool()
            for n, m in mask.items()}


@suite.wrong(r"return a dict of masks, one per layer, not list")
def returns_a_list(mask, generator):
    return [_scatter(m, torch.randperm(m.numel(), generator=generator)[: int(m.sum())]) for m in mask.values()]


# --- right -------------------------------------------------------------------------------------------


@suite.right
def rand_argsort(mask, generator):
    return {n: _scatter(m, torch.rand(m.numel(), generator=generator).argsort()[: int(m.sum())])
            for n, m in mask.items()}


@suite.right
def multinomial_without_replacement(mask, generator):
    out = {}
    for n, m in mask.items():
        picks = torch.multinomial(torch.ones(m.numel()), int(m.sum()), replacement=False, generator=generator)
        out[n] = _scatter(m, picks)
    return out


@suite.right
def shuffles_the_flat_mask(mask, generator):
    return {n: m.flatten()[torch.randperm(m.numel(), generator=generator)].reshape(m.shape) for n, m in mask.items()}


@suite.right
def topk_of_uniform_scores_on_bool(mask, generator):
    out = {}
    for n, m in mask.items():
        keep = torch.zeros(m.shape, dtype=torch.bool)
        keep.view(-1)[torch.rand(m.numel(), generator=generator).topk(int(m.bool().sum())).indices] = True
        out[n] = keep.to(m.dtype)
    return out


@suite.right
def randperm_in_float64(mask, generator):
    out = {}
    for n, m in mask.items():
        flat = torch.zeros(m.numel(), dtype=torch.float64)
        flat[torch.randperm(m.numel(), generator=generator)[: int(m.double().sum().item())]] = 1.0
        out[n] = flat.reshape(m.shape).to(m.dtype)
    return out
