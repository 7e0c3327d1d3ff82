"""Every code checker accepts every correct implementation and refuses each classic mistake by name."""

import math

import pytest
import torch

from learner_solutions import (keep_signs_right, prune_argsort, random_right, reinit_right, rewind_right, snip_right,
                               to_bitmask_right, top_k_right)

from lthkit.course.exercises import verdict
from lthkit.course.verdicts import REFERENCES
from lthkit.models import build_model, init_weights
from lthkit.rewind import keep_signs as lthkit_keep_signs
from lthkit.supermask import top_k_mask as lthkit_top_k

# --- 02.prune-layer ---------------------------------------------------------------------------------


def prune_topk_reversed_ties(weights, mask, rate):
    """Another correct way: topk over scores where pruned weights score infinity; ties the other way."""
    count = math.floor(rate * int(mask.sum()) + 0.5)
    scores = torch.where(mask.bool(), weights.abs(), torch.tensor(float("inf"))).flatten()
    order = torch.arange(scores.numel(), 0, -1, dtype=scores.dtype) * 1e-12  # breaks ties from the end
    drop = torch.topk(-(scores + order), count).indices
    new = mask.clone().flatten()
    new[drop] = 0
    return new.reshape(mask.shape)


def prune_sort_bool_mask_kept(weights, mask, rate):
    alive_values = weights.abs()[mask.bool()]
    count = math.floor(rate * alive_values.numel() + 0.5)
    if count == 0:
        return mask.clone()
    ranked = torch.sort(weights.abs().flatten() + (1 - mask.flatten()) * 1e9, stable=True).indices
    new = mask.clone().flatten()
    new[ranked[:count]] = 0
    return new.view(mask.shape)


def signed_threshold(weights, mask, rate):
    alive = mask.flatten().nonzero().flatten()
    count = math.floor(rate * len(alive) + 0.5)
    smallest = alive[torch.argsort(weights.flatten()[alive])[:count]]
    new = mask.clone().flatten()
    new[smallest] = 0
    return new.view_as(mask)


def counts_the_whole_layer(weights, mask, rate):
    alive = mask.flatten().nonzero().flatten()
    count = math.floor(rate * mask.numel() + 0.5)
    smallest = alive[torch.argsort(weights.abs().flatten()[alive])[:count]]
    new = mask.clone().flatten()
    new[smallest] = 0
    return new.view_as(mask)


def ranks_pruned_zeros_too(weights, mask, rate):
    count = math.floor(rate * int(mask.sum()) + 0.5)
    smallest = torch.argsort(weights.abs().flatten(), stable=True)[:count]
    new = mask.clone().flatten()
    new[smallest] = 0
    return new.view_as(mask)


def ignores_the_mask(weights, mask, rate):
    count = math.floor(rate * int(mask.sum()) + 0.5)
    new = torch.ones_like(mask).flatten()
    alive = mask.flatten().nonzero().flatten()
    new[alive[torch.argsort(weights.abs().flatten()[alive])[:count]]] = 0
    return new.view_as(mask)


def threshold_takes_every_tie(weights, mask, rate):
    alive = weights.abs()[mask.bool()]
    count = math.floor(rate * alive.numel() + 0.5)
    if count == 0:
        return mask.clone()
    threshold = alive.sort().values[count - 1]
    return mask * (weights.abs() > threshold).to(mask.dtype)


def changes_the_mask_in_place(weights, mask, rate):
    new = prune_argsort(weights, mask, rate)
    mask.copy_(new)
    return mask


def returns_bool(weights, mask, rate):
    return prune_argsort(weights, mask, rate).bool()


def forgets_the_shape(weights, mask, rate):
    return prune_argsort(weights, mask, rate).flatten()


def not_written(weights, mask, rate):
    raise NotImplementedError()


@pytest.mark.parametrize("fn", [prune_argsort, prune_topk_reversed_ties, prune_sort_bool_mask_kept])
def test_correct_pruning_passes_on_hand_made_cases_and_the_network(fn, trained_lenet):
    v = verdict("02.prune-layer", fn, model=trained_lenet)
    assert v.correct, v.message
    assert "two rounds on every layer" in v.message


@pytest.mark.parametrize("fn,named", [
    (signed_threshold, "signed values"),
    (counts_the_whole_layer, "already-pruned weights do not count toward the rate"),
    (ranks_pruned_zeros_too, "already-pruned weights must not count"),
    (ignores_the_mask, "came back"),
    (threshold_takes_every_tie, "tie at the threshold"),
    (changes_the_mask_in_place, "in place"),
    (returns_bool, "same shape and dtype"),
    (forgets_the_shape, "same shape and dtype"),
    (not_written, "not written yet"),
    (lambda w, m, r: w[0] / 0 if False else 1 / 0, "ZeroDivisionError"),
])
def test_each_classic_pruning_mistake_is_refused_by_name(fn, named, trained_lenet):
    v = verdict("02.prune-layer", fn, model=trained_lenet)
    assert not v.correct
    assert named in v.message, v.message


def test_the_hand_made_cases_alone_catch_the_mistakes():
    """Without a network the checker still refuses each mistake (a learner may call it early)."""
    for fn in (signed_threshold, counts_the_whole_layer, ranks_pruned_zeros_too, threshold_takes_every_tie):
        assert not verdict("02.prune-layer", fn).correct
    assert verdict("02.prune-layer", prune_argsort).correct


# --- 03.rewind and 03.imp-round -----------------------------------------------------------------------


def rewind_by_copy(model, initial, mask):
    with torch.no_grad():
        for name, value in model.state_dict().items():
            value.copy_(initial[name] * mask[name] if name in mask else initial[name])
    return model


def rewind_to_trained(model, initial, mask):
    with torch.no_grad():
        for name, m in mask.items():
            model.get_parameter(name).mul_(m)
    return model


def rewind_without_mask(model, initial, mask):
    model.load_state_dict(initial)
    return model


def rewind_weights_only(model, initial, mask):
    with torch.no_grad():
        for name, m in mask.items():
            model.get_parameter(name).copy_(initial[name] * m)
    return model


def rewind_masking_initial(model, initial, mask):
    for name, m in mask.items():
        initial[name].mul_(m)
    model.load_state_dict(initial)
    return model


def rewind_returns_nothing(model, initial, mask):
    rewind_right(model, initial, mask)


@pytest.mark.parametrize("fn", [rewind_right, rewind_by_copy])
def test_a_correct_rewind_passes(fn, mnist_small):
    v = verdict("03.rewind", fn, data=mnist_small)
    assert v.correct, v.message


@pytest.mark.parametrize("fn,named", [
    (rewind_to_trained, "rewound to the trained weights"),
    (rewind_without_mask, "pruned weights are not zero"),
    (rewind_weights_only, "biases are not rewound"),
    (rewind_masking_initial, "changed `initial` in place"),
    (rewind_returns_nothing, "return the ticket"),
])
def test_each_rewind_mistake_is_refused_by_name(fn, named, mnist_small):
    v = verdict("03.rewind", fn, data=mnist_small)
    assert not v.correct
    assert named in v.message, v.message


def make_round(prune=prune_argsort, rewind=rewind_right, order="prune-rewind-train", train_mask="new"):
    def imp_round(trained, initial, mask, rates, train):
        if order == "rewind-first":
            trained = rewind(trained, initial, mask)
        weights = dict(trained.named_parameters())
        new_mask = {n: prune(weights[n].detach(), mask[n], rates[n]) for n in mask}
        ticket = trained if order == "no-rewind" else rewind(trained, initial, new_mask)
        if order == "no-rewind":
            with torch.no_grad():
                for n, m in new_mask.items():
                    ticket.get_parameter(n).mul_(m)
        train(ticket, {"new": new_mask, "old": mask, "none": None}[train_mask])
        return new_mask, ticket
    return imp_round


def test_a_correct_round_passes(mnist_small):
    v = verdict("03.imp-round", make_round(), data=mnist_small)
    assert v.correct, v.message


@pytest.mark.parametrize("fn,named", [
    (make_round(train_mask="none"), "trained without the mask"),
    (make_round(train_mask="old"), "trained with the old mask"),
    (make_round(order="rewind-first"), "pruned by the initial weights"),
    (make_round(order="no-rewind"), "started from the trained weights"),
    (make_round(prune=signed_threshold), "signed values"),
    (make_round(rewind=rewind_to_trained), "started from the trained weights"),
    (lambda trained, initial, mask, rates, train: (mask, trained), "prunes nothing"),
])
def test_each_round_mistake_is_refused_by_name(fn, named, mnist_small):
    v = verdict("03.imp-round", fn, data=mnist_small)
    assert not v.correct
    assert named in v.message, v.message


# --- 04.reinit and 04.random-mask ---------------------------------------------------------------------


def reinit_with_lthkit(model, mask, seed):
    init_weights(model, seed)
    with torch.no_grad():
        for name, m in mask.items():
            model.get_parameter(name).mul_(m)
    return model


def reinit_reuses_initial(model, mask, seed):
    with torch.no_grad():
        for name, m in mask.items():
            model.get_parameter(name).mul_(m)
    return model


def reinit_pytorch_default(model, mask, seed):
    torch.manual_seed(seed)
    for module in model.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    with torch.no_grad():
        for name, m in mask.items():
            model.get_parameter(name).mul_(m)
    return model


def reinit_uniform(model, mask, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, m in mask.items():
            weight = model.get_parameter(name)
            torch.nn.init.xavier_uniform_(weight, generator=g)
            weight.mul_(m)
    return model


def reinit_unmasked(model, mask, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name in mask:
            torch.nn.init.xavier_normal_(model.get_parameter(name), generator=g)
    return model


def reinit_ignores_seed(model, mask, seed):
    return reinit_right(model, mask, 7)


def reinit_global_rng(model, mask, seed):
    with torch.no_grad():
        for name, m in mask.items():
            weight = model.get_parameter(name)
            torch.nn.init.xavier_normal_(weight)
            weight.mul_(m)
    return model


@pytest.mark.parametrize("fn", [reinit_right, reinit_with_lthkit])
def test_a_correct_reinit_passes(fn):
    v = verdict("04.reinit", fn)
    assert v.correct, v.message


@pytest.mark.parametrize("fn,named", [
    (reinit_reuses_initial, "original initial values"),
    (reinit_pytorch_default, "PyTorch's default"),
    (reinit_uniform, "look uniform"),
    (reinit_unmasked, "pruned weights are not zero"),
    (reinit_ignores_seed, "use the seed you are given"),
    (reinit_global_rng, "same seed gave different weights"),
])
def test_each_reinit_mistake_is_refused_by_name(fn, named):
    v = verdict("04.reinit", fn)
    assert not v.correct
    assert named in v.message, v.message


def random_by_shuffling_the_mask(mask, generator):
    return {n: m.flatten()[torch.randperm(m.numel(), generator=generator)].view_as(m) for n, m in mask.items()}


def random_bernoulli(mask, generator):
    return {n: torch.bernoulli(torch.full_like(m, float(m.mean())), generator=generator) for n, m in mask.items()}


def random_across_layers(mask, generator):
    flat = torch.cat([m.flatten() for m in mask.values()])
    flat = flat[torch.randperm(flat.numel(), generator=generator)]
    out, start = {}, 0
    for n, m in mask.items():
        out[n] = flat[start:start + m.numel()].view_as(m)
        start += m.numel()
    return out


def random_among_survivors(mask, generator):
    out = {}
    for n, m in mask.items():
        alive = m.flatten().nonzero().flatten()
        keep = alive[torch.randperm(len(alive), generator=generator)[: int(0.9 * len(alive))]]
        flat = torch.zeros(m.numel(), dtype=m.dtype)
        flat[keep] = 1
        out[n] = flat.view_as(m)
    return out


def random_global_rng(mask, generator):
    return {n: m.flatten()[torch.randperm(m.numel())].view_as(m) for n, m in mask.items()}


def random_returns_the_ticket(mask, generator):
    return {n: m.clone() for n, m in mask.items()}


@pytest.mark.parametrize("fn", [random_right, random_by_shuffling_the_mask])
def test_a_correct_random_mask_passes(fn):
    v = verdict("04.random-mask", fn)
    assert v.correct, v.message


@pytest.mark.parametrize("fn,named", [
    (random_bernoulli, "only on average"),
    (random_across_layers, "not each layer's count"),
    (random_among_survivors, "wrong number of weights per layer"),
    (random_global_rng, "generator you are given"),
    (random_returns_the_ticket, "the ticket's own mask"),
])
def test_each_random_mask_mistake_is_refused_by_name(fn, named):
    v = verdict("04.random-mask", fn)
    assert not v.correct
    assert named in v.message, v.message


@pytest.mark.parametrize("name, context", [
    ("02.prune-layer", lambda get: {"model": get("trained_lenet")}),
    ("03.rewind", lambda get: {"data": get("mnist_small")}),
    ("03.imp-round", lambda get: {"data": get("mnist_small")}),
    ("04.reinit", lambda get: {}),
    ("04.random-mask", lambda get: {}),
])
def test_lthkits_reference_passes_its_own_checker(name, context, request):
    """The function a notebook falls back on (course.yours) is one its checker accepts."""
    v = verdict(name, REFERENCES[name], **context(request.getfixturevalue))
    assert v.correct, v.message


# --- 07.snip-score ----------------------------------------------------------------------------------


def snip_backward_summed(model, images, labels, mask):
    """Another correct way: a deep copy with the mask applied, the summed loss, .backward()."""
    import copy

    net = copy.deepcopy(model)
    with torch.no_grad():
        for name, m in mask.items():
            net.get_parameter(name).mul_(m)
    torch.nn.functional.cross_entropy(net(images), labels, reduction="sum").backward()
    return {name: (net.get_parameter(name).grad * net.get_parameter(name)).abs().detach() for name in mask}


def snip_mistake(kind):
    def score(model, images, labels, mask):
        weights = {n: model.get_parameter(n).detach() * (m if kind != "unmasked" else 1) for n, m in mask.items()}
        for w in weights.values():
            w.requires_grad_()
        params = {**{n: p.detach() for n, p in model.named_parameters()}, **weights}
        loss = torch.nn.functional.cross_entropy(torch.func.functional_call(model, params, (images,)), labels)
        grads = dict(zip(weights, torch.autograd.grad(loss, list(weights.values()))))
        if kind == "in place":
            with torch.no_grad():
                for n, m in mask.items():
                    model.get_parameter(n).mul_(m)
        if kind == "biases":
            return {n: p.detach().abs() for n, p in model.named_parameters()}
        return {n: {"signed": grads[n] * weights[n], "gradient": grads[n].abs(), "magnitude": weights[n].abs(),
                    "unmasked": (grads[n] * weights[n] * mask[n]).abs(), "in place": (grads[n] * weights[n]).abs(),
                    "squared": (grads[n] * weights[n]) ** 2}[kind].detach() for n in mask}
    return score


@pytest.mark.parametrize("fn", [snip_right, snip_backward_summed])
def test_a_correct_snip_score_passes(fn, mnist_small):
    assert verdict("07.snip-score", fn, data=mnist_small).correct
    assert verdict("07.snip-score", fn).correct  # on random images when no data is given


@pytest.mark.parametrize("kind, named", [
    ("signed", "with their signs"), ("gradient", "|g| alone"), ("magnitude", "magnitude pruning at initialisation"),
    ("unmasked", "forward pass used the pruned weights"), ("in place", "the model's weights changed"),
    ("biases", "biases are not pruned"), ("squared", "you squared g * w"),
])
def test_each_snip_mistake_is_refused_by_name(kind, named, mnist_small):
    result = verdict("07.snip-score", snip_mistake(kind), data=mnist_small)
    assert not result.correct and named in result.message, result.message


# --- 08.top-k-mask, 08.keep-signs ---------------------------------------------------------------------


class _StraightThroughKept(torch.autograd.Function):
    """A custom step whose backward passes the gradient to the kept scores only."""

    @staticmethod
    def forward(ctx, scores, density):
        a = scores.abs()
        hard = torch.zeros_like(a)
        hard.view(-1)[a.flatten().topk(round(density * a.numel())).indices] = 1.0
        ctx.save_for_backward(hard)
        return hard

    @staticmethod
    def backward(ctx, grad):
        (hard,) = ctx.saved_tensors
        return grad * hard, None


def top_k_mistake(kind):
    def mask(scores, density):
        n = scores.numel()
        if kind == "in place":
            scores.data.abs_()
        a = scores if kind == "signed" else scores.abs()
        k = int(density * n) if kind == "floor" else round(density * n)
        if kind == "per row":
            hard = torch.zeros_like(a)
            rows = a.view(-1, a.shape[-1]) if a.dim() > 1 else a.view(1, -1)
            per_row = round(density * rows.shape[1])
            hard.view_as(rows).scatter_(1, rows.detach().topk(per_row, dim=1).indices, 1.0)
        elif kind == "kept only":
            return _StraightThroughKept.apply(scores, density)
        else:
            hard = torch.zeros_like(a)
            hard.view(-1)[a.detach().flatten().topk(k).indices] = 1.0
        if kind == "no gradient":
            return hard
        if kind == "unbracketed":
            return hard + a - a.detach()
        return hard + (a - a.detach())
    return mask


def top_k_straight_to_scores(scores, density):
    """Also right: the gradient straight through to the scores themselves."""
    a = scores.abs()
    hard = torch.zeros_like(a)
    hard.view(-1)[a.detach().flatten().topk(round(density * a.numel())).indices] = 1.0
    return hard + (scores - scores.detach())


@pytest.mark.parametrize("fn", [top_k_right, top_k_straight_to_scores, lthkit_top_k])
def test_a_correct_top_k_mask_passes(fn):
    v = verdict("08.top-k-mask", fn)
    assert v.correct, v.message


@pytest.mark.parametrize("kind, named", [
    ("signed", "with their signs"), ("floor", "int() rounds down"), ("per row", "each row"),
    ("kept only", "only the kept weights"), ("no gradient", "no gradient reaches the scores"),
    ("unbracketed", "up to rounding"), ("in place", "changed the scores in place"),
])
def test_each_top_k_mistake_is_refused_by_name(kind, named):
    v = verdict("08.top-k-mask", top_k_mistake(kind))
    assert not v.correct and named in v.message, v.message


@pytest.mark.parametrize("fn", [keep_signs_right, lthkit_keep_signs, lambda i, f: torch.where(i < 0, -f.abs(), f.abs())])
def test_a_correct_keep_signs_passes(fn):
    v = verdict("08.keep-signs", fn)
    assert v.correct, v.message


@pytest.mark.parametrize("fn, named", [
    (lambda i, f: f * i.sign(), "flips the sign"), (lambda i, f: i.clone(), "the initial weights themselves"),
    (lambda i, f: i.abs() * f.sign(), "roles are swapped"), (lambda i, f: f.abs(), "every weight is positive"),
    (lambda i, f: i.sign() * f.std(), "signed constant"), (lambda i, f: f.abs_().mul_(i.sign()), "in place"),
    (lambda i, f: f.abs() * i / i.abs() * (1 + 1e-7), "exactly"), (lambda i, f: f, "|fresh| with the sign"),
])
def test_each_keep_signs_mistake_is_refused_by_name(fn, named):
    v = verdict("08.keep-signs", fn)
    assert not v.correct and named in v.message, v.message


# --- 09.prunable-kinds --------------------------------------------------------------------------------


def kinds_by_loop(model):
    """Also right: by module type and position, for any depth."""
    kinds = {"embed.weight": "embedding", "head.weight": "output"}
    for i, block in enumerate(model.blocks):
        kinds |= {f"blocks.{i}.{n}.weight": ("attention" if n in ("qkv", "proj") else "mlp")
                  for n in ("qkv", "proj", "fc1", "fc2")}
    return kinds


def kinds_mistake(kind):
    def kinds(model):
        right = kinds_by_loop(model)
        if kind == "biases":
            return right | {n.replace("weight", "bias"): k for n, k in right.items()}
        if kind == "norms":
            return right | {"norm.weight": "mlp"}
        if kind == "positions":
            return right | {"pos": "embedding"}
        if kind == "two blocks":
            return {n: k for n, k in right.items() if not n.startswith("blocks.2")}
        if kind == "no embedding":
            return {n: k for n, k in right.items() if n != "embed.weight"}
        if kind == "head as mlp":
            return right | {"head.weight": "mlp"}
        if kind == "qkv as mlp":
            return right | {"blocks.0.qkv.weight": "mlp"}
        return list(right)
    return kinds


def test_a_correct_transformer_kinds_passes():
    v = verdict("09.prunable-kinds", kinds_by_loop)
    assert v.correct, v.message


def test_lthkits_own_answer_is_not_the_learners():
    v = verdict("09.prunable-kinds", lambda m: m.prunable_kinds())
    assert not v.correct and "lthkit's own answer" in v.message, v.message


@pytest.mark.parametrize("kind, named", [
    ("biases", "biases"), ("norms", "layer norms"), ("positions", "class token or the positions"),
    ("two blocks", "two blocks only"), ("no embedding", "patch embedding"), ("head as mlp", "output layer"),
    ("qkv as mlp", "are attention"), ("a list", "return a dict"),
])
def test_each_transformer_kinds_mistake_is_refused_by_name(kind, named):
    v = verdict("09.prunable-kinds", kinds_mistake(kind))
    assert not v.correct and named in v.message, v.message


# --- 10.bitmask ---------------------------------------------------------------------------------------


def bitmask_bits(keep, order="big"):
    import numpy as np

    return torch.from_numpy(np.packbits(keep.flatten().numpy(), bitorder=order))


def bitmask_mistake(kind):
    def to_bitmask(weight, mask):
        keep = mask.bool()
        bits, values = bitmask_bits(keep), weight[keep].float()
        if kind == "bool bits":
            return keep.flatten(), values
        if kind == "little":
            return bitmask_bits(keep, "little"), values
        if kind == "zeros as mask":
            return bitmask_bits(weight != 0), weight[weight != 0]
        if kind == "column bits":
            return bitmask_bits(keep.T), values
        if kind == "every value":
            return bits, weight.flatten()
        if kind == "float64":
            return bits, values.double()
        if kind == "column values":
            return bits, weight.T[keep.T]
        if kind == "non-zero values":
            return bits, weight[weight != 0]
        if kind == "in place":
            weight.mul_(keep)
            mask.fill_(True)
            return bits, values
        return [bits, values]
    return to_bitmask


def test_a_correct_to_bitmask_passes_and_lthkit_reads_it_back():
    v = verdict("10.bitmask", to_bitmask_right)
    assert v.correct and "bit for bit" in v.message, v.message


@pytest.mark.parametrize("kind, named", [
    ("bool bits", "one byte per weight"), ("little", "bit order"), ("zeros as mask", "weights' zeros"),
    ("column bits", "column by column"), ("every value", "every weight"), ("float64", "float32"),
    ("column values", "column by column"), ("non-zero values", "non-zero weights"), ("in place", "in place"),
    ("a list", "two tensors"),
])
def test_each_to_bitmask_mistake_is_refused_by_name(kind, named):
    v = verdict("10.bitmask", bitmask_mistake(kind))
    assert not v.correct and named in v.message, v.message


# --- the references of 07-10: lthkit's own, with the learner's signature ------------------------------


@pytest.mark.parametrize("name", ["07.snip-score", "08.top-k-mask", "08.keep-signs", "09.prunable-kinds",
                                  "10.bitmask", "12.drop-and-grow"])
def test_each_reference_passes_its_own_checker(name, mnist_small):
    from lthkit.course.verdicts import REFERENCES

    v = verdict(name, REFERENCES[name], **({"data": mnist_small} if name == "07.snip-score" else {}))
    assert v.correct, v.message


def test_the_snip_reference_runs_as_imp_calls_a_score(mnist_small):
    from lthkit.course.verdicts import REFERENCES
    from lthkit.masks import Mask
    from lthkit.prune_at_init import snip_scores

    model = build_model("lenet300", (1, 28, 28), seed=0)
    images, labels, mask = mnist_small.train.x[:50], mnist_small.train.y[:50], Mask.ones_like(model)
    mine = REFERENCES["07.snip-score"](model, images=images, labels=labels, mask=mask)
    assert all(torch.equal(mine[n], s) for n, s in snip_scores(model, images, labels, mask=mask).items())


@pytest.mark.parametrize("depth", [1, 2, 5])
def test_the_kinds_reference_finds_lthkits_kinds_from_the_layers_alone(depth):
    from lthkit.course.verdicts import REFERENCES
    from lthkit.models import ViT

    model = ViT((1, 28, 28), depth=depth)
    assert REFERENCES["09.prunable-kinds"](model) == model.prunable_kinds()
