"""Notebook 04's code exercises: the controls."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from lthkit.course.code_exercises.common import Mistake, _judge, _run, _same, _state
from lthkit.course.verdicts import Verdict, exercise
from lthkit.masks import Mask, layer_rates, prune_by_magnitude, random_mask_like
from lthkit.models import build_model
from lthkit.rewind import reinitialize
from lthkit.seeds import generator


def _glorot_std(weight: torch.Tensor) -> float:
    fan_out, fan_in = weight.shape[0], weight[0].numel()
    return math.sqrt(2.0 / (fan_in + fan_out))


def _control_setup() -> tuple[nn.Module, Mask]:
    model = build_model("lenet300", (1, 28, 28), seed=0)
    rates = layer_rates(model, {"fc": 0.5, "output": 0.3})
    return model, prune_by_magnitude(model, Mask.ones_like(model), rates)


def _kaiming_std(weight: torch.Tensor) -> float:
    return math.sqrt(2.0 / weight[0].numel())


def _std_hint(std: float, weight: torch.Tensor) -> str:
    """What a wrong standard deviation is, when it is a known initialiser's."""
    fan_in = weight[0].numel()
    known = {" (that is PyTorch's default, reset_parameters)": 1 / math.sqrt(3 * fan_in),
             " (that is Kaiming/He's, kaiming_normal_)": _kaiming_std(weight),
             " (that is N(0, 1): normal_ without std)": 1.0,
             " (that is xavier_normal_ with a ReLU gain, sqrt(2) too large)": math.sqrt(2) * _glorot_std(weight)}
    return next((hint for hint, s in known.items() if abs(std - s) < 0.05 * s), "")


def _reseeded(got: dict[str, torch.Tensor], mask: Mask) -> tuple[str, str] | None:
    """Two layers whose fresh values start with the same draws, scaled: one generator re-seeded per layer
    (a layer of n values and one of m share their first ~min(n, m) normal draws)."""
    names = list(mask)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            n = min(got[a].numel(), got[b].numel()) - 16  # normal_ redraws the last 16 values of a tensor
            first, second = got[a].flatten()[:n], got[b].flatten()[:n]
            both = (first != 0) & (second != 0)
            if int(both.sum()) < 20:
                continue
            ratio = second[both] / first[both]
            if float((ratio - ratio.median()).abs().le(1e-4 * ratio.median().abs()).float().mean()) > 0.5:
                return a, b
    return None


def _reinit_reference(model: nn.Module, mask: dict, seed: int) -> nn.Module:
    """lthkit's reinit control with the learner's signature, as ``lthkit.imp.Rules`` runs it."""
    return reinitialize(model, Mask(mask), seed)


@exercise("04.reinit", reference=_reinit_reference)
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
        for n in mask:
            if bool((got[n][mask[n] == 0] != 0).any()):
                raise Mistake(f"{n}: pruned weights are not zero: multiply the fresh weights by the mask, after "
                              f"drawing them")
        survivors = {n: got[n][mask[n] == 1] for n in mask}
        for n in mask:
            if torch.equal(survivors[n], original[n][mask[n] == 1]):
                raise Mistake(f"{n}: the survivors still hold their original initial values: the reinit control "
                              f"draws fresh ones for every layer (with another seed), or it is the ticket again")
        again = _state(_run(fn, copy.deepcopy(model), {n: m.clone() for n, m in mask.items()}, 1234))
        if not _same(got, again):
            raise Mistake("two calls with the same seed gave different weights: draw from the seed you are given "
                          "(g = torch.Generator().manual_seed(seed)), so that runs can be repeated")
        other = _state(_run(fn, copy.deepcopy(model), {n: m.clone() for n, m in mask.items()}, 99))
        if _same(got, other, list(mask)):
            raise Mistake("seeds 1234 and 99 gave the same weights: use the seed you are given")
        pair = _reseeded(got, mask)
        if pair:
            raise Mistake(f"you re-seeded the generator for each layer: {pair[1]}'s fresh values repeat "
                          f"{pair[0]}'s first ones, scaled, so the layers are not independent draws; make one "
                          f"generator, g = torch.Generator().manual_seed(seed), before the loop and draw every "
                          f"layer from it")
        params = dict(model.named_parameters())
        for name in mask:
            std, want = float(survivors[name].std()), _glorot_std(params[name])
            if abs(std - want) > 0.1 * want:
                raise Mistake(f"{name}: the fresh weights have standard deviation {std:.4f}"
                              f"{_std_hint(std, params[name])}; the paper's initialiser, Gaussian Glorot "
                              f"(torch.nn.init.xavier_normal_), gives {want:.4f}")
        big = survivors["fc1.weight"]
        kurtosis = float(((big - big.mean()) ** 4).mean() / big.var() ** 2)
        if kurtosis < 2.5:
            raise Mistake("the fresh weights look uniform (kurtosis {:.1f}); the paper draws Gaussian Glorot "
                          "weights: torch.nn.init.xavier_normal_, not xavier_uniform_".format(kurtosis))
        biases = [n for n in got if n.endswith("bias")]
        if any(bool(got[n].ne(0).any()) for n in biases):
            raise Mistake("the biases are not zero: the paper's initialisation sets them to zero; leave them as "
                          "they are (draw only the masked weight matrices)")
        return "keeps the mask and draws fresh Gaussian Glorot weights from the seed it is given."
    return _judge("reinit", cases)


def _structured_ticket() -> Mask:
    """A ticket with the structure a trained LeNet-300-100's has, built in milliseconds: fc1 keeps most of its
    weights on the centre pixels (the columns of the blank border nearly empty) and some units (rows) keep
    many more than others. Each layer keeps an exact count, drawn with probabilities proportional to a row
    weight times a column weight (Gumbel top-k), from a fixed seed. A mask from an untrained network has no
    such structure, so a "random" mask that keeps the ticket's rows or columns would pass as uniform."""
    g = torch.Generator().manual_seed(0)
    centre = (torch.arange(28.0) - 13.5) ** 2
    pixels = torch.exp(-(centre[:, None] + centre[None, :]) / (2 * 5.0 ** 2)).flatten() + 1e-3
    layers = {"fc1.weight": (300, 784, 0.1), "fc2.weight": (100, 300, 0.2), "fc3.weight": (10, 100, 0.5)}
    masks = {}
    for name, (rows, cols, density) in layers.items():
        col_w = pixels if cols == 784 else torch.rand(cols, generator=g) ** 4 + 0.01
        row_w = torch.rand(rows, generator=g) ** 2 + 0.05
        gumbel = -torch.log(-torch.log(torch.rand(rows, cols, generator=g).clamp_min(1e-12)))
        score = (row_w[:, None] * col_w[None, :]).log() + gumbel
        flat = torch.zeros(rows * cols)
        flat[score.flatten().topk(round(density * rows * cols)).indices] = 1
        masks[name] = flat.view(rows, cols)
    return Mask(masks)


STRUCTURE_MATTERS = ("a row- or column-preserving mask keeps the ticket's choice of which pixels and units matter: "
                     "on a trained one-shot ticket at 3.6% of the weights a row-permuted mask still puts 2.9% of "
                     "fc1's kept weights on the blankest quarter of pixels where a uniform one puts 24.5%, and "
                     "trains to 95.6% vs 94.0% for a uniform mask, so the control would close half the gap to the "
                     "ticket and hide what it is for; draw every position of the layer uniformly "
                     "(torch.randperm(m.numel(), generator=generator))")


def _spread(mask: torch.Tensor, dim: int) -> tuple[torch.Tensor, float]:
    """The counts along ``dim`` (dim=1: per row) and their variance over a uniform draw's (about 1)."""
    counts = mask.sum(dim=dim)
    size, per = mask.numel(), mask.shape[dim]
    density = float(mask.sum()) / size
    uniform = per * density * (1 - density) * (size - per) / (size - 1)
    return counts, float(counts.var()) / uniform


def _judge_structure(drawn: Mask, ticket: Mask) -> None:
    """Raise ``Mistake`` when a layer's mask keeps the ticket's count per row or column, or its positions
    cluster or spread evenly in a way a uniform draw almost never does."""
    for n in ("fc1.weight", "fc2.weight"):
        kept = [unit for dim, unit in ((1, "row (unit)"), (0, "column (input)"))
                if torch.equal(drawn[n].sum(dim=dim).sort().values, ticket[n].sum(dim=dim).sort().values)]
        if kept:
            raise Mistake(f"{n}: your mask keeps the ticket's number of weights in each {' and each '.join(kept)}, "
                          f"only moved around (permuting rows or columns, or shifting, flipping or rolling the "
                          f"ticket's mask does that): {STRUCTURE_MATTERS}")
    for n in ("fc1.weight", "fc2.weight"):
        overlap = float((drawn[n] * ticket[n]).sum()) / ticket.alive(n)
        density = ticket.alive(n) / ticket.size(n)
        if overlap < density / 2:
            raise Mistake(f"{n}: only {overlap:.0%} of your positions are the ticket's, where a uniform draw gives "
                          f"about {density:.0%}: you avoided the ticket's positions; draw among all the layer's "
                          f"positions, each with equal chance")
        for dim, unit in ((1, "row (unit)"), (0, "column (input)")):
            _, ratio = _spread(drawn[n], dim)
            if ratio > 3:
                raise Mistake(f"{n}: the number of weights per {unit} varies {ratio:.0f} times as much as in a "
                              f"uniform draw: your positions keep the ticket's structure; {STRUCTURE_MATTERS}")
            if ratio < 0.25:
                raise Mistake(f"{n}: every {unit} keeps nearly the same number of weights ({ratio:.2g} times a "
                              f"uniform draw's variance), as evenly spaced positions do: draw the positions "
                              f"uniformly at random (torch.randperm(m.numel(), generator=generator))")
        if abs(overlap - density) > 6 * math.sqrt(density * (1 - density) / ticket.alive(n)):  # 6 sd of a uniform draw
            raise Mistake(f"{n}: {overlap:.0%} of your positions are the ticket's, where a uniform draw gives "
                          f"about {density:.0%}: draw every position with equal chance, wherever the ticket's are")


def _random_mask_reference(mask: dict, generator: torch.Generator) -> Mask:
    """lthkit's random-mask control with the learner's signature (``random_mask_like``)."""
    return random_mask_like(Mask(mask), generator)


@exercise("04.random-mask", reference=_random_mask_reference)
def _random_mask_exercise(fn) -> Verdict:
    def cases() -> str:
        ticket = _structured_ticket()
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
            drawn = Mask({n: m.cpu() for n, m in out.items()})
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
            if all(c[0] == ticket.size(n) - c[1] for n, c in wrong.items()):
                raise Mistake(f"you kept as many weights as the ticket prunes (yours, the ticket's: {wrong}): keep as "
                              f"many as it keeps, the 1s of each mask (int(m.sum()))")
            if all(2 < abs(c[0] - c[1]) < 6 * math.sqrt(c[1] + 1) for c in wrong.values()):  # a Bernoulli draw's error
                raise Mistake(f"wrong number of weights per layer (yours, the ticket's: {wrong}): choose exactly as "
                              f"many positions as the ticket keeps in each layer (torch.randperm), not each weight "
                              f"with a probability, which matches the count only on average")
            raise Mistake(f"wrong number of weights per layer (yours, the ticket's: {wrong}): keep exactly as many "
                          f"as the ticket keeps in each layer, int(m.sum())")
        again = Mask(_run(fn, {n: m.clone() for n, m in ticket.items()}, generator("check", 0)))
        if again != drawn:
            raise Mistake("two calls with equal generators gave different masks: draw with the generator you are "
                          "given (torch.randperm(n, generator=generator)), so that runs can be repeated")
        other = Mask(_run(fn, {n: m.clone() for n, m in ticket.items()}, generator("check", 1)))
        if other == drawn:
            raise Mistake("two different generators gave the same mask: draw with the generator you are given")
        _judge_structure(drawn, ticket)
        return "keeps each layer's count exactly and draws the positions uniformly from the generator given."
    return _judge("random_mask", cases)
