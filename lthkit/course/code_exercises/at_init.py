"""Notebook 07's code exercises: SNIP's score, by hand."""

from __future__ import annotations

import torch
from torch import nn

from lthkit.course.code_exercises.common import Mistake, _judge, _run, _same, _state
from lthkit.course.verdicts import Verdict, exercise
from lthkit.masks import Mask, prune_by_magnitude
from lthkit.models import build_model
from lthkit.seeds import generator


def _proportional(mine: torch.Tensor, truth: torch.Tensor) -> bool:
    """``mine = c * truth`` for one ``c > 0`` (the mean or the sum of the losses rank alike)."""
    scale = truth.abs().max()
    if scale == 0:
        return bool((mine == 0).all())
    c = mine.flatten() @ truth.flatten() / (truth.flatten() @ truth.flatten())
    return bool(c > 0) and torch.allclose(mine, c * truth, rtol=1e-3, atol=1e-6 * float(c * scale))


def _snip_setup(data) -> tuple[nn.Module, Mask, torch.Tensor, torch.Tensor]:
    """A LeNet-300-100 at initialisation, with a mask that has pruned a third of fc1 and fc2
    already, and 100 training images (the learner's data, or random ones)."""
    model = build_model("lenet300", (1, 28, 28), seed=7)
    mask = prune_by_magnitude(model, Mask.ones_like(model), {"fc1.weight": 0.3, "fc2.weight": 0.3,
                                                              "fc3.weight": 0.0})
    if data is not None:
        images, labels = data.train.x[:100].cpu(), data.train.y[:100].cpu()
    else:
        g = generator("check", 7)
        images, labels = torch.randn(100, 1, 28, 28, generator=g), torch.randint(0, 10, (100,), generator=g)
    return model, mask, images, labels


def _grads(model: nn.Module, mask: Mask | None, images, labels) -> dict[str, torch.Tensor]:
    """The gradient of the mean cross-entropy at each prunable weight, the mask applied or not."""
    from torch.func import functional_call

    weights = {n: p.detach().clone() for n, p in model.named_parameters()}
    for n, m in (mask or {}).items():
        weights[n] = weights[n] * m
    names = list(Mask.ones_like(model))
    leaves = {n: weights[n].requires_grad_() for n in names}
    loss = torch.nn.functional.cross_entropy(functional_call(model, weights, (images,)), labels)
    return dict(zip(names, torch.autograd.grad(loss, list(leaves.values()))))


@exercise("07.snip-score")
def _snip_score_exercise(fn, *, data=None) -> Verdict:
    from lthkit.prune_at_init import snip_scores

    def cases() -> str:
        model, mask, images, labels = _snip_setup(data)
        before = _state(model)
        out = _run(fn, model, images.clone(), labels.clone(), {n: m.clone() for n, m in mask.items()})
        if not _same(_state(model), before):
            raise Mistake("the model's weights changed: a score only reads them. Apply the mask to copies "
                          "(weight * mask) in the forward pass, not to the model in place")
        if not isinstance(out, dict) or set(out) != set(mask):
            got = sorted(out) if isinstance(out, dict) else type(out).__name__
            raise Mistake(f"return {{weight name: scores}} for exactly the prunable weights {list(mask)} (biases are "
                          f"not pruned), not {got}")
        for n, m in mask.items():
            if not isinstance(out[n], torch.Tensor) or out[n].shape != m.shape:
                raise Mistake(f"the scores of {n} must be one per weight, a tensor of shape {tuple(m.shape)}")
        mine = {n: out[n].detach().double() for n in mask}
        truth = {n: s.double() for n, s in snip_scores(model, images, labels, mask=mask).items()}
        whole = torch.cat([mine[n].flatten() for n in mask])
        right = torch.cat([truth[n].flatten() for n in mask])
        if _proportional(whole, right):
            return ("is |g * w| with the mask applied, on every layer of a LeNet-300-100 "
                    "(the ranking SNIP prunes by).")
        weights = {n: model.get_parameter(n).detach().double() for n in mask}
        grads = {n: g.double() for n, g in _grads(model, mask, images, labels).items()}
        unmasked = {n: g.double() for n, g in _grads(model, None, images, labels).items()}
        alive = torch.cat([mask[n].flatten() for n in mask]).bool()

        def flat(d):
            return torch.cat([d[n].flatten() for n in mask])

        signed = flat({n: grads[n] * weights[n] * mask[n] for n in mask})
        if _proportional(whole[alive], signed[alive]) or _proportional(whole[alive], -signed[alive]):
            raise Mistake("your scores are g * w with their signs: SNIP ranks by |g * w|, how much the loss would "
                          "change either way. Without .abs() the weights whose removal lowers the loss most rank "
                          "lowest and are pruned first")
        if _proportional(whole[alive], flat(grads).abs()[alive]):
            raise Mistake("you scored by |g| alone: SNIP multiplies by the weight, since removing w changes the "
                          "loss by about g * w (a gate on each weight, set from 1 to 0)")
        if _proportional(whole[alive], flat(weights).abs()[alive]):
            raise Mistake("that is |w|, magnitude pruning at initialisation, not SNIP: multiply by the gradient "
                          "of the loss")
        full = flat({n: (unmasked[n] * weights[n]).abs() for n in mask})
        if _proportional(whole[alive], full[alive]):
            raise Mistake("your forward pass used the pruned weights: with the mask applied (weights * mask) the "
                          "gradients are those of the network that will actually train")
        if bool((whole[~alive] != 0).any()) and _proportional(whole[alive], right[alive]):
            raise Mistake("pruned weights must score 0 (their weight is 0 under the mask): multiply by the masked "
                          "weights, not the model's")
        raise Mistake("your scores are not proportional to |g * w|: g is the gradient of the cross-entropy "
                      "(torch.nn.functional.cross_entropy) of the model's output on the images given, with "
                      "respect to each weight (torch.autograd.grad), and w the weight with the mask applied")
    return _judge("snip_score", cases)
