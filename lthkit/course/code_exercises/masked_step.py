"""Notebook 03's code exercise: the masked training step, the lines that keep a pruned network pruned.

The classic bug of lottery-ticket code is a pruned weight revived by the optimiser: Adam's moments
or weight decay move it off zero, or a gradient nobody masked does. The checker runs the learner's
step beside lthkit's (``lthkit.train.masked_step``) for several steps of three optimisers with
weight decay (Adam, AdamW, SGD with momentum), from weights already masked and from freshly pruned
weights that are not zero yet, and names what differs: revived weights, moments kept for pruned
weights, only the gradient masked, no step, gradients accumulated, the mask edited.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from lthkit.course.code_exercises.common import Mistake, _judge, _run
from lthkit.course.verdicts import Verdict, exercise
from lthkit.masks import Mask, layer_rates, prune_by_magnitude
from lthkit.models import build_model
from lthkit.seeds import generator
from lthkit.train import masked_step

STEPS = 4
OPTIMISERS: dict[str, Callable[[list], torch.optim.Optimizer]] = {
    "Adam with weight decay": lambda ps: torch.optim.Adam(ps, lr=1e-2, weight_decay=1e-2),
    "AdamW": lambda ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=0.1),
    "SGD with momentum and weight decay": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=1e-2),
}
MOMENT_NAMES = ("exp_avg", "exp_avg_sq", "momentum_buffer")


def _setup() -> tuple[nn.Module, Mask, list[tuple[torch.Tensor, torch.Tensor]]]:
    """A LeNet-300-100 whose weights are moved off initialisation (so that magnitude pruning picks
    a mask with structure), its mask at about a third of the weights, and a few batches."""
    model = build_model("lenet300", (1, 28, 28), seed=0)
    g = generator("check", "masked-step")
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    mask = prune_by_magnitude(model, Mask.ones_like(model), layer_rates(model, {"fc": 0.7, "output": 0.5}))
    batches = [(torch.rand(32, 1, 28, 28, generator=g), torch.randint(0, 10, (32,), generator=g))
               for _ in range(STEPS)]
    return model, mask, batches


def _weights(model: nn.Module, mask: Mask) -> dict[str, torch.Tensor]:
    """The weights the network computes with, read through the module (so that a weight
    parametrised by ``torch.nn.utils.prune`` is read as its forward pass sees it)."""
    out = {}
    for name in mask:
        module, _, leaf = name.rpartition(".")
        out[name] = getattr(model.get_submodule(module), leaf).detach().clone()
    return out


def _moments(optimizer: torch.optim.Optimizer, model: nn.Module, mask: Mask) -> dict[str, torch.Tensor]:
    """The optimiser's per-weight memory (Adam's moments, SGD's momentum) of each masked weight."""
    by_param = {id(p): n for n, p in model.named_parameters()}
    out = {}
    for p, state in optimizer.state.items():
        name = by_param.get(id(p), "").replace("_orig", "")
        if name in mask:
            for key in MOMENT_NAMES:
                if key in state:
                    out[f"{name} {key}"] = state[key].detach().clone()
    return out


def _pruned(w: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return w[m.to(w.device) == 0]


def _gradient_masked_only(model: nn.Module, mask: dict, optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    """The half-right step: the gradient masked, the weights not."""
    optimizer.zero_grad()
    loss.backward()
    for name, m in mask.items():
        model.get_parameter(name).grad.mul_(m)
    optimizer.step()


def _judge_steps(fn: Callable, optimiser: str, mask_first: bool) -> None:
    model, mask, batches = _setup()
    if mask_first:
        mask.apply_(model)
    case = f"{optimiser}, " + ("from weights already masked" if mask_first else
                               "from a freshly pruned network whose pruned weights are not zero yet")
    make = OPTIMISERS[optimiser]
    nets = [copy.deepcopy(model) for _ in range(3)]
    mine, ours, half = nets
    my_opt, our_opt, half_opt = (make(list(n.parameters())) for n in nets)
    for s, (x, y) in enumerate(batches, start=1):
        before = _weights(mine, mask)
        given = {n: m.clone() for n, m in mask.items()}
        _run(fn, mine, given, my_opt, F.cross_entropy(mine(x), y))
        masked_step(ours, dict(mask), our_opt, F.cross_entropy(ours(x), y))
        _gradient_masked_only(half, dict(mask), half_opt, F.cross_entropy(half(x), y))
        if set(given) != set(mask) or any(not torch.equal(given[n], mask[n]) for n in mask):
            raise Mistake(f"{case}: you changed the mask you were given in place; read it, do not edit it: the "
                          f"loop uses the same mask at every step")
        got, want = _weights(mine, mask), _weights(ours, mask)
        if all(torch.equal(_alive(got[n], mask[n]), _alive(before[n], mask[n])) for n in mask):
            raise Mistake(f"{case}: after your step the surviving weights have not moved: call optimizer.step() "
                          f"after loss.backward() (and zero the gradients before backward, not after it)")
        revived = [n for n in mask if bool((_pruned(got[n], mask[n]) != 0).any())]
        if revived:
            n = revived[0]
            if all(torch.equal(got[k], _weights(half, mask)[k]) for k in mask):
                raise Mistake(f"{case}: the pruned weights of {n} are not zero after your step: masking the "
                              f"gradient alone stops a weight's gradient, not the weight itself, which was not zero "
                              f"(and weight decay moves it); multiply the weights by the mask after the step too")
            raise Mistake(f"{case}, step {s}: pruned weights of {n} were revived "
                          f"({int((_pruned(got[n], mask[n]) != 0).sum())} are no longer zero): their gradients, the "
                          f"optimiser's momentum and weight decay move them; mask the gradients before "
                          f"optimizer.step() and multiply the weights by the mask after it")
        kept = [k for k, v in _moments(my_opt, mine, mask).items() if bool((_pruned(v, mask[k.split()[0]]) != 0).any())]
        if kept and mask_first:
            raise Mistake(f"{case}: the optimiser keeps moments for pruned weights ({kept[0]} is not zero where the "
                          f"mask is 0): mask the gradients (weight.grad.mul_(mask)) after loss.backward() and before "
                          f"optimizer.step(), not only the weights after it")
        if any(not torch.allclose(got[n], want[n], rtol=1e-4, atol=1e-6) for n in mask):
            raise Mistake(_why_different(case, s))


def _alive(w: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return w[m.to(w.device) != 0]


def _why_different(case: str, s: int) -> str:
    if s > 1:
        return (f"{case}: from step {s} on your surviving weights move differently from one optimiser step on "
                f"this batch's loss: gradients add up across steps unless you zero them (optimizer.zero_grad()) "
                f"before loss.backward()")
    return (f"{case}: your first step moves the surviving weights differently from one optimiser step on the "
            f"loss given: call optimizer.zero_grad(), then loss.backward(), then optimizer.step(), each once, "
            f"masking only the pruned weights' gradients")


@exercise("03.masked-step", reference=masked_step)
def _masked_step_exercise(fn) -> Verdict:
    def cases() -> str:
        for mask_first in (True, False):
            for optimiser in OPTIMISERS:
                _judge_steps(fn, optimiser, mask_first)
        return (f"keeps every pruned weight at exactly zero and the optimiser's moments of pruned weights at zero, "
                f"over {STEPS} steps of {', '.join(OPTIMISERS)}, from masked and from freshly pruned weights, "
                f"and moves the survivors as one optimiser step does.")
    return _judge("masked_step", cases)
