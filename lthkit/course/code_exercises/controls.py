"""Notebook 04's code exercises: the controls."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from lthkit.course.code_exercises.common import Mistake, _judge, _run, _same, _state
from lthkit.course.verdicts import Verdict, exercise
from lthkit.masks import Mask, layer_rates, prune_by_magnitude
from lthkit.models import build_model
from lthkit.seeds import generator


def _glorot_std(weight: torch.Tensor) -> float:
    fan_out, fan_in = weight.shape[0], weight[0].numel()
    return math.sqrt(2.0 / (fan_in + fan_out))


def _control_setup() -> tuple[nn.Module, Mask]:
    model = build_model("lenet300", (1, 28, 28), seed=0)
    rates = layer_rates(model, {"fc": 0.5, "output": 0.3})
    return model, prune_by_magnitude(model, Mask.ones_like(model), rates)


@exercise("04.reinit")
def _reinit_exercise(fn) -> Verdict:
    def cases() -> str:
        model, mask = _control_setup()
        original = _state(model)
        given = {n: m.clone() for n, m in mask.items()}
        out = _run(fn, copy.deepcopy(model), given, 1234)
        if not isinstance(out, nn.Module):
            raise Mistake(f"return the model, not {type(out).__name__}")
        if Mask(given) != mask:
            raise Mistake("you changed the mask you were given in place: work on the weights only")
        got = _state(out)
        if any(bool((got[n][mask[n] == 0] != 0).any()) for n in mask):
            raise Mistake("pruned weights are not zero: multiply the fresh weights by the mask")
        survivors = {n: got[n][mask[n] == 1] for n in mask}
        if any(torch.equal(survivors[n], original[n][mask[n] == 1]) for n in mask):
            raise Mistake("the survivors still hold their original initial values: the reinit control draws fresh "
                          "ones (with another seed), or it is the ticket again")
        again = _state(_run(fn, copy.deepcopy(model), {n: m.clone() for n, m in mask.items()}, 1234))
        if not _same(got, again):
            raise Mistake("two calls with the same seed gave different weights: draw from the seed you are given "
                          "(g = torch.Generator().manual_seed(seed)), so that runs can be repeated")
        other = _state(_run(fn, copy.deepcopy(model), {n: m.clone() for n, m in mask.items()}, 99))
        if _same(got, other, list(mask)):
            raise Mistake("seeds 1234 and 99 gave the same weights: use the seed you are given")
        params = dict(model.named_parameters())
        for name in mask:
            std, want = float(survivors[name].std()), _glorot_std(params[name])
            if abs(std - want) > 0.1 * want:
                kaiming_uniform = 1 / math.sqrt(3 * params[name][0].numel())
                hint = (" (that is PyTorch's default, reset_parameters)" if abs(std - kaiming_uniform) < 0.1 *
                        kaiming_uniform else "")
                raise Mistake(f"{name}: the fresh weights have standard deviation {std:.4f}{hint}; the paper's "
                              f"initialiser, Gaussian Glorot (torch.nn.init.xavier_normal_), gives {want:.4f}")
        big = survivors["fc1.weight"]
        kurtosis = float(((big - big.mean()) ** 4).mean() / big.var() ** 2)
        if kurtosis < 2.5:
            raise Mistake("the fresh weights look uniform (kurtosis {:.1f}); the paper draws Gaussian Glorot "
                          "weights: torch.nn.init.xavier_normal_, not xavier_uniform_".format(kurtosis))
        biases = [n for n in got if n.endswith("bias")]
        if any(bool(got[n].ne(0).any()) for n in biases):
            raise Mistake("the biases are not zero: the paper's initialisation sets them to zero")
        return "keeps the mask and draws fresh Gaussian Glorot weights from the seed it is given."
    return _judge("reinit", cases)


@exercise("04.random-mask")
def _random_mask_exercise(fn) -> Verdict:
    def cases() -> str:
        model, ticket = _control_setup()
        ticket = prune_by_magnitude(model, ticket, layer_rates(model, {"fc": 0.5, "output": 0.3}))
        given = {n: m.clone() for n, m in ticket.items()}
        out = _run(fn, given, generator("check", 0))
        if Mask(given) != ticket:
            raise Mistake("you changed the ticket's mask in place: build a new one")
        if not isinstance(out, dict) and not isinstance(out, Mask):
            raise Mistake(f"return a dict of masks, one per layer, not {type(out).__name__}")
        if set(out) != set(ticket):
            raise Mistake(f"return a mask for each of {sorted(ticket)}")
        for n, m in out.items():
            if not isinstance(m, torch.Tensor) or m.shape != ticket[n].shape or m.dtype != ticket[n].dtype:
                raise Mistake(f"{n}: return a tensor of the mask's shape and dtype ({tuple(ticket[n].shape)}, "
                              f"{ticket[n].dtype})")
        try:
            drawn = Mask(out)
        except ValueError as e:
            raise Mistake(str(e)) from None
        if drawn == ticket:
            raise Mistake("you returned the ticket's own mask: the control draws new positions at random")
        counts = {n: (drawn.alive(n), ticket.alive(n)) for n in ticket}
        wrong = {n: c for n, c in counts.items() if c[0] != c[1]}
        if wrong:
            if drawn.alive() == ticket.alive():
                raise Mistake(f"the total is right but not each layer's count ({wrong}): draw each layer's positions "
                              f"separately, keeping its own number of weights")
            raise Mistake(f"wrong number of weights per layer (yours, the ticket's: {wrong}): choose exactly as many "
                          f"positions as the ticket keeps in each layer (torch.randperm), not each weight with a "
                          f"probability, which matches the count only on average")
        again = Mask(_run(fn, {n: m.clone() for n, m in ticket.items()}, generator("check", 0)))
        if again != drawn:
            raise Mistake("two calls with equal generators gave different masks: draw with the generator you are "
                          "given (torch.randperm(n, generator=generator)), so that runs can be repeated")
        other = Mask(_run(fn, {n: m.clone() for n, m in ticket.items()}, generator("check", 1)))
        if other == drawn:
            raise Mistake("two different generators gave the same mask: draw with the generator you are given")
        overlap = (drawn["fc1.weight"] * ticket["fc1.weight"]).sum() / ticket.alive("fc1.weight")
        density = ticket.alive("fc1.weight") / ticket.size("fc1.weight")
        if abs(float(overlap) - density) > 0.02:
            raise Mistake(f"fc1: {float(overlap):.0%} of your positions are the ticket's, where a uniform draw "
                          f"gives about {density:.0%}: draw every position with equal chance")
        return "keeps each layer's count exactly and draws the positions uniformly from the generator given."
    return _judge("random_mask", cases)
