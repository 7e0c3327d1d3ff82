"""Learners' edge-popup masks (notebook 08): top_k_mask(scores, density) -> 0/1 mask, gradient straight through."""

import math

import torch

from learners import Suite

suite = Suite("08.top-k-mask")


def _hard(a, k):
    """1 at the k largest entries of ``a`` (any shape), 0 elsewhere."""
    flat = a.detach().flatten()
    return torch.zeros_like(flat).scatter_(0, flat.topk(k).indices, 1.0).view_as(a)


# --- wrong -------------------------------------------------------------------------------------------


@suite.wrong(r"with their signs")
def signed_scores(scores, density):
    return _hard(scores, round(density * scores.numel())) + (scores - scores.detach())


@suite.wrong(r"int\(\) rounds down")
def int_count(scores, density):
    a = scores.abs()
    return _hard(a, int(density * a.numel())) + (a - a.detach())


@suite.wrong(r"math\.ceil rounds up")
def ceil_count(scores, density):
    a = scores.abs()
    return _hard(a, math.ceil(density * a.numel())) + (a - a.detach())


@suite.wrong(r">= at the threshold keeps every score tied")
def kthvalue_threshold_keeps_ties(scores, density):
    a = scores.abs()
    k = round(density * a.numel())
    threshold = a.detach().flatten().kthvalue(a.numel() - k + 1).values
    return (a >= threshold).float() + (a - a.detach())


@suite.wrong(r">= at the threshold keeps every score tied")
def quantile_threshold(scores, density):
    a = scores.abs()
    return (a >= a.detach().quantile(1 - density)).float() + (a - a.detach())


@suite.wrong(r"> at the threshold drops every score tied")
def strict_threshold_drops_ties(scores, density):
    a = scores.abs()
    k = round(density * a.numel())
    threshold = a.detach().flatten().sort().values[a.numel() - k - 1]
    return (a > threshold).float() + (a - a.detach())


@suite.wrong(r"one too many")
def threshold_one_place_off(scores, density):
    a = scores.abs()
    k = round(density * a.numel())
    threshold = a.detach().flatten().sort(descending=True).values[k]
    return (a >= threshold).float() + (a - a.detach())


@suite.wrong(r"each row")
def ranks_each_row(scores, density):
    a = scores.abs()
    rows = a.view(-1, a.shape[-1])
    hard = torch.zeros_like(rows).scatter_(1, rows.detach().topk(round(density * rows.shape[1]), dim=1).indices, 1.0)
    return hard.view_as(a) + (a - a.detach())


@suite.wrong(r"each row")
def topk_along_the_last_dimension(scores, density):
    a = scores.abs()
    k = round(density * a.numel())
    hard = torch.zeros_like(a).scatter_(-1, a.detach().topk(min(k, a.shape[-1]), dim=-1).indices, 1.0)
    return hard + (a - a.detach())


@suite.wrong(r"no gradient reaches")
def forgets_the_straight_through(scores, density):
    return _hard(scores.abs(), round(density * scores.numel()))


@suite.wrong(r"no gradient reaches")
def a_new_leaf_that_requires_grad(scores, density):
    return _hard(scores.abs(), round(density * scores.numel())).requires_grad_()


@suite.wrong(r"only the kept weights")
def gradient_through_the_kept_only(scores, density):
    a = scores.abs()
    hard = _hard(a, round(density * a.numel()))
    return hard * a / a.detach()


@suite.wrong(r"up to rounding")
def unbracketed(scores, density):
    a = scores.abs()
    return _hard(a, round(density * a.numel())) + a - a.detach()


@suite.wrong(r"mask is bool")
def bool_mask(scores, density):
    a = scores.abs()
    return _hard(a, round(density * a.numel())).bool()


@suite.wrong(r"in place")
def abs_in_place_through_data(scores, density):
    a = scores.data.abs_()
    return _hard(a, round(density * a.numel())) + (scores - scores.detach())


@suite.wrong(r"in place")
def abs_in_place(scores, density):
    a = scores.abs_()
    return _hard(a, round(density * a.numel())) + (a - a.detach())


@suite.wrong(r"returned None")
def forgets_to_return(scores, density):
    a = scores.abs()
    mask = _hard(a, round(density * a.numel())) + (a - a.detach())  # noqa: F841


@suite.wrong(r"scores' dtype \(torch\.float32\), not torch\.float64")
def float64_mask(scores, density):
    a = scores.abs()
    flat = a.detach().flatten()
    hard = torch.zeros(flat.numel(), dtype=torch.float64)
    hard[flat.topk(round(density * flat.numel())).indices] = 1
    return hard.view(a.shape) + (a - a.detach())


@suite.wrong(r"scores' dtype \(torch\.float32\), not torch\.int64")
def integer_mask(scores, density):
    a = scores.abs()
    hard = torch.zeros(a.shape, dtype=torch.long)
    hard.view(-1)[a.detach().flatten().topk(round(density * a.numel())).indices] = 1
    return hard


@suite.wrong(r"on the CPU")
def mask_made_on_the_cpu(scores, density):
    a = scores.abs()
    hard = torch.zeros(a.numel())
    hard[a.detach().flatten().topk(round(density * a.numel())).indices] = 1.0
    return hard.view(a.shape) + (a - a.detach())


@suite.wrong(r"smallest \|scores\|")
def keeps_the_smallest(scores, density):
    a = scores.abs()
    flat = a.detach().flatten()
    hard = torch.zeros_like(flat).scatter_(0, flat.topk(round(density * flat.numel()), largest=False).indices, 1.0)
    return hard.view_as(a) + (a - a.detach())


@suite.wrong(r"inverted")
def drops_the_top(scores, density):
    a = scores.abs()
    return 1 - _hard(a, round(density * a.numel())) + (a - a.detach())


@suite.wrong(r"counted the weights to drop")
def density_as_the_pruned_share(scores, density):
    a = scores.abs()
    return _hard(a, round((1 - density) * a.numel())) + (a - a.detach())


@suite.wrong(r"reach every score unchanged")
def straight_through_a_sigmoid(scores, density):
    a = scores.abs()
    s = torch.sigmoid(a)
    return _hard(a, round(density * a.numel())) + (s - s.detach())


# --- right -------------------------------------------------------------------------------------------


@suite.right
def argsort_descending(scores, density):
    a = scores.abs()
    k = round(density * a.numel())
    order = torch.argsort(a.detach().flatten(), descending=True)
    hard = torch.zeros_like(a).flatten()
    hard[order[:k]] = 1.0
    return hard.reshape(a.shape) + (a - a.detach())


@suite.right
def straight_to_the_scores(scores, density):
    k = round(density * scores.numel())
    return _hard(scores.abs(), k) + (scores - scores.detach())


@suite.right
def halves_up(scores, density):
    a = scores.abs()
    return _hard(a, math.floor(density * a.numel() + 0.5)) + (a - a.detach())


class _StraightThrough(torch.autograd.Function):
    @staticmethod
    def forward(ctx, scores, density):
        a = scores.abs()
        hard = torch.zeros_like(a)
        hard.view(-1)[a.flatten().topk(round(density * a.numel())).indices] = 1.0
        return hard

    @staticmethod
    def backward(ctx, grad):
        return grad, None


@suite.right
def custom_autograd_function(scores, density):
    return _StraightThrough.apply(scores, density)


@suite.right
def index_fill_on_a_flat_copy(scores, density):
    a = scores.abs()
    flat = a.detach().reshape(-1)
    kept = flat.topk(int(round(density * flat.numel()))).indices
    hard = torch.zeros_like(flat).index_fill_(0, kept, 1.0)
    return hard.reshape(a.shape) + (a - a.detach())
