"""Notebook 11's code exercise: which parts of a ticket travel to another dataset or optimiser.

The learner writes ``transfer(model, mask, initial, trained) -> model``: the target's network
``model`` (at its own initialisation) given the ticket, that is the ``mask`` on the ticket's own
``initial`` weights (its rewind point, biases included). The classic mistakes: the source's trained
weights (fine-tuning, not a ticket), the target's own initial values under the mask (the mask alone:
the reinit control), the mask forgotten, inverted, or left off a layer, rescaled survivors, the
mask read from the trained weights' zeros, the target's biases kept, tensors shared with the
ticket (training would change the rewind point), ``torch.nn.utils.prune``'s reparametrisation left
on, another dtype, and editing what it is given in place.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from lthkit.course.code_exercises.common import Mistake, _judge, _run, _state
from lthkit.course.verdicts import Verdict, exercise
from lthkit.masks import Mask, layer_rates, prune_by_magnitude
from lthkit.models import build_model
from lthkit.seeds import generator
from lthkit.transfer import transfer_ticket


def _ticket() -> tuple[nn.Module, Mask, dict, dict]:
    """A target network (seed 7) and a ticket of another initialisation (seed 0) whose biases are not
    zero (a fresh LeNet's are), whose trained weights differ from both, and one of whose surviving
    trained weights is exactly zero."""
    source = build_model("lenet300", (1, 28, 28), seed=0)
    g = generator("check", "transfer")
    initial = {k: v.clone() for k, v in source.state_dict().items()}
    for name in initial:
        if name.endswith("bias"):
            initial[name] = torch.randn(initial[name].shape, generator=g) * 0.1
    mask = prune_by_magnitude(source, Mask.ones_like(source), layer_rates(source, {"fc": 0.6, "output": 0.4}))
    trained = {k: (v + torch.randn(v.shape, generator=g) * 0.05) for k, v in initial.items()}
    for name, m in mask.items():
        trained[name] = trained[name] * m
    kept = mask["fc2.weight"].flatten().nonzero()[0, 0]
    trained["fc2.weight"].view(-1)[kept] = 0.0
    return build_model("lenet300", (1, 28, 28), seed=7), mask, initial, trained


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and torch.equal(a, b)


@exercise("11.transfer", reference=transfer_ticket)
def _transfer_exercise(fn) -> Verdict:
    def cases() -> str:
        target, mask, initial, trained = _ticket()
        own = _state(target)
        given = ({n: m.clone() for n, m in mask.items()}, {k: v.clone() for k, v in initial.items()},
                 {k: v.clone() for k, v in trained.items()})
        out = _run(fn, copy.deepcopy(target), *given)
        if not isinstance(out, nn.Module):
            raise Mistake(f"return the model, not {type(out).__name__} (did you forget `return model`?)")
        for what, was, now in zip(("mask", "initial", "trained"), (mask, initial, trained), given):
            if any(not _same(now[k], was[k]) for k in was):
                raise Mistake(f"you changed the `{what}` you were given in place: it is the ticket's, used again "
                              f"for the controls; work on the model's weights (copy_, load_state_dict)")
        wrapped = [n for n, _ in out.named_parameters() if n.endswith("_orig")]
        if wrapped:
            raise Mistake(f"the model is still pruned with torch.nn.utils.prune ({wrapped[0]}): call "
                          f"torch.nn.utils.prune.remove(module, 'weight') on each layer, so that its weights are plain")
        got = _state(out)
        if set(got) != set(own):
            raise Mistake(f"the model's state has other entries than the target's ({sorted(set(got) ^ set(own))[:3]}): "
                          f"change the weights of the model you are given")
        for name, value in got.items():
            if value.dtype != own[name].dtype:
                raise Mistake(f"{name} is {value.dtype}, the network's {own[name].dtype}: copy the values in with "
                              f"param.copy_(...) (which keeps the dtype), not by replacing the tensor")
        for name, m in mask.items():
            _judge_layer(name, got[name], m.bool(), initial[name], trained[name], own[name])
        for name in got:
            if name in mask or _same(got[name], initial[name]):
                continue
            if _same(got[name], own[name]):
                raise Mistake(f"{name} holds the target's own values: a ticket's rewind point is its whole state, "
                              f"biases included; load all of `initial` (model.load_state_dict(initial)), then mask")
            raise Mistake(f"{name} is neither the ticket's initial value nor the target's: load it from `initial`")
        with torch.no_grad():
            for p in out.parameters():
                p.add_(1.0)
        shared = [k for k in initial if not _same(given[1][k], initial[k])]
        if shared:
            raise Mistake(f"the model shares memory with `initial` ({shared[0]}): training it would change the "
                          f"ticket's rewind point, which the random control starts from too; copy the values in "
                          f"(param.copy_(initial[name]) or model.load_state_dict(initial)), do not assign the tensor")
        frozen = [n for n, p in out.named_parameters() if not p.requires_grad]
        if frozen:
            raise Mistake(f"{frozen[0]} no longer requires a gradient: the ticket could not train; copy values into "
                          f"the existing parameters instead of replacing them")
        return ("carries the ticket's mask on its own initial weights (biases too), neither the trained weights "
                "nor the target's initialisation.")
    return _judge("transfer", cases)


def _judge_layer(name: str, got: torch.Tensor, kept: torch.Tensor, initial: torch.Tensor, trained: torch.Tensor,
                 own: torch.Tensor) -> None:
    """One masked weight matrix against the ticket: ``initial`` where ``kept``, zero elsewhere."""
    if _same(got[kept], initial[kept]) and _same(got[~kept], initial[~kept]):
        raise Mistake(f"{name}: the pruned weights are not zero: the mask was not applied to this layer "
                      f"(multiply every masked weight matrix by its mask, the output layer's too)")
    if bool((got[kept] == 0).all()) and _same(got[~kept], initial[~kept]):
        raise Mistake(f"{name}: you kept the pruned weights and zeroed the survivors: a mask's 1s mark the weights "
                      f"that stay (weight * mask), not those that go")
    if _same(got[kept], trained[kept]):
        raise Mistake(f"{name}: the survivors hold the source's trained weights: a ticket carries its initial weights "
                      f"(its rewind point), not the trained ones; starting from those is fine-tuning, not a ticket")
    if _same(got[kept], own[kept]):
        raise Mistake(f"{name}: the survivors hold the target network's own initial values: a ticket is its mask "
                      f"with its own initial weights; the mask on the target's initialisation is the reinit control")
    if bool((got[~kept] != 0).any()):
        raise Mistake(f"{name}: pruned weights are not zero: multiply the weights by the mask")
    differ = got[kept] != initial[kept]
    if bool(differ.any()):
        zeroed = (got[kept] == 0) & (trained[kept] == 0)
        if bool(zeroed.any()) and bool((differ == zeroed).all()):
            raise Mistake(f"{name}: a surviving weight is zero where the trained weights are exactly zero: you "
                          f"read the mask from the trained weights' zeros; a survivor can train to exactly 0, so "
                          f"use the mask you are given")
        ratio = got[kept][initial[kept] != 0] / initial[kept][initial[kept] != 0]
        if bool(torch.allclose(ratio, ratio[0].expand_as(ratio))) and float(ratio[0]) != 1.0:
            raise Mistake(f"{name}: the survivors are the initial weights times {float(ratio[0]):.3g}: a ticket keeps "
                          f"its initial values as they were, no rescaling (that is dropout's, not pruning's)")
        raise Mistake(f"{name}: {int(differ.sum())} survivors differ from the ticket's initial weights: copy them "
                      f"from `initial` bit for bit")
