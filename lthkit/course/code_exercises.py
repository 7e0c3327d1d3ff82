"""Checkers for the code a learner writes: the heart of IMP, by hand.

Notebook 02 has the learner write one layer's magnitude pruning, 03 the rewind and one round
of IMP, 04 the two controls. Each checker runs the learner's function itself, on small
hand-made tensors built to expose one classic mistake each (the mistakes other lottery-ticket
code bases shipped) and on a real LeNet-300-100, and names the first mistake it finds.
Every correct implementation passes: any order among tied magnitudes when the count is
exact, any way that keeps the mask's dtype and shape. ``check("02.prune-layer", prune_layer,
model=model)`` is called like the other exercises.
"""

from __future__ import annotations

import copy
import math
import traceback
from collections.abc import Callable

import torch
from torch import nn

from lthkit.course.verdicts import Verdict, exercise
from lthkit.masks import Mask, count_to_prune, layer_rates, prune_by_magnitude
from lthkit.models import build_model
from lthkit.rewind import rewind_to
from lthkit.seeds import generator

NOT_WRITTEN = "not written yet: replace `raise NotImplementedError()` with your code, then run both cells again."
PAPER_RATES = {"fc": 0.2, "output": 0.1}


class Mistake(Exception):
    """What the learner's function got wrong, in words that name the mistake."""


def _run(fn: Callable, *args):
    try:
        return fn(*args)
    except NotImplementedError:
        raise
    except Mistake:
        raise
    except Exception as e:  # the learner's own error, shown as the learner would see it
        where = traceback.extract_tb(e.__traceback__)[-1]
        raise Mistake(f"your function raised {type(e).__name__}: {e} (line {where.lineno}: "
                      f"{where.line or '?'})") from None


def _judge(name: str, cases: Callable[[], str]) -> Verdict:
    try:
        passed = cases()
    except NotImplementedError:
        return Verdict(False, NOT_WRITTEN)
    except Mistake as m:
        return Verdict(False, str(m))
    return Verdict(True, f"your {name} {passed}")


# --- 02: one layer's magnitude pruning -------------------------------------------------------------

def _expected_counts(rate: float, alive: int) -> set[int]:
    """``count_to_prune``; at an exact half, Python's ``round`` (halves to even) is as right."""
    return {count_to_prune(rate, alive), round(rate * alive)}


def judge_prune_layer(fn: Callable, weights: torch.Tensor, mask: torch.Tensor, rate: float, case: str) -> None:
    """Raise ``Mistake`` unless ``fn(weights, mask, rate)`` is a correct pruning of one layer."""
    given = mask.clone()
    new = _run(fn, weights.clone(), given, rate)
    if not torch.equal(given, mask):
        raise Mistake(f"{case}: you changed the mask you were given in place; work on a copy (mask.clone()): "
                      f"the loop keeps the old mask")
    if not isinstance(new, torch.Tensor):
        raise Mistake(f"{case}: return the new mask as a tensor, not {type(new).__name__}")
    if new.shape != mask.shape or new.dtype != mask.dtype:
        raise Mistake(f"{case}: return a mask of the same shape and dtype as the one given ({tuple(mask.shape)}, "
                      f"{mask.dtype}), not {tuple(new.shape)}, {new.dtype}")
    if not bool(((new == 0) | (new == 1)).all()):
        raise Mistake(f"{case}: a mask holds only 0 and 1")
    alive, kept = mask.bool(), new.bool()
    if bool((kept & ~alive).any()):
        raise Mistake(f"{case}: weights pruned earlier came back; keep every 0 of the mask you were given "
                      f"(ignoring the mask revives pruned weights)")
    removed = alive & ~kept
    n_alive, n_removed, size = int(alive.sum()), int(removed.sum()), mask.numel()
    right = _expected_counts(rate, n_alive)
    magnitude = weights.abs()
    if n_removed not in right:
        want = min(right)
        if n_removed == count_to_prune(rate, size) and size != n_alive:
            raise Mistake(f"{case}: you removed {n_removed} weights, {rate:g} of all {size} in the layer; already-"
                          f"pruned weights do not count toward the rate: remove {want}, {rate:g} of the {n_alive} "
                          f"still alive")
        if n_removed == 0 and size != n_alive and want > 0:
            raise Mistake(f"{case}: nothing new was removed: the smallest magnitudes are the zeros of weights "
                          f"pruned earlier, and already-pruned weights must not count toward the rate; rank only "
                          f"the {n_alive} alive weights")
        at_threshold = magnitude[removed].max() if n_removed else None
        if n_removed > want and at_threshold is not None and int((magnitude[alive] == at_threshold).sum()) > 1:
            raise Mistake(f"{case}: you removed {n_removed} weights instead of {want}: several weights tie at the "
                          f"threshold |w| = {at_threshold:g} and you removed all of them. Remove exactly "
                          f"round({rate:g} x {n_alive}) = {want} (torch.argsort or torch.topk pick an exact count)")
        raise Mistake(f"{case}: you removed {n_removed} weights; {rate:g} of the {n_alive} alive is {want} "
                      f"(rounded to the nearest whole weight)")
    if n_removed and bool(kept.any()) and magnitude[removed].max() > magnitude[kept].min():
        signed = weights[removed].min() < 0 and weights[removed].min() < -magnitude[kept].min()
        if signed:
            raise Mistake(f"{case}: you removed large negative weights (e.g. {weights[removed].min():g}) and kept "
                          f"smaller ones: a threshold on signed values ranks -3 below 0.1. Rank by magnitude, "
                          f"weights.abs()")
        raise Mistake(f"{case}: you removed a weight of magnitude {magnitude[removed].max():g} and kept one of "
                      f"{magnitude[kept].min():g}: remove the smallest magnitudes")


def _prune_cases() -> list[tuple[str, torch.Tensor, torch.Tensor, float]]:
    ones = torch.ones(10)
    return [
        ("signs", torch.tensor([0.5, -3.0, 0.1, -0.2, 2.0, -0.05, 1.0, 4.0, -1.5, 0.3]), ones, 0.3),
        ("a layer pruned before", torch.tensor([0.0, 0.9, 0.0, -0.4, 0.6, 0.0, 0.2, -0.8, 0.5, 0.7]),
         torch.tensor([0.0, 1, 0, 1, 1, 0, 1, 1, 1, 1]), 0.3),
        ("pruned weights that are not zero", torch.tensor([0.01, 0.9, 0.02, -0.4, 0.6, 0.03, 0.2, -0.8, 0.5, 0.7]),
         torch.tensor([0.0, 1, 0, 1, 1, 0, 1, 1, 1, 1]), 0.3),
        ("tied magnitudes", torch.tensor([0.5, -0.5, 0.5, 0.5, 1.0, 2.0, -0.5, 3.0, 0.5, 4.0]), ones, 0.3),
        ("a 2-D weight matrix", torch.arange(-6.0, 6.0).reshape(3, 4) + 0.25, torch.ones(3, 4), 0.5),
        ("rate 0", torch.tensor([0.3, -0.1, 0.2, 0.4]), torch.ones(4), 0.0),
    ]


@exercise("02.prune-layer")
def _prune_layer_exercise(fn, *, model: nn.Module | None = None) -> Verdict:
    def cases() -> str:
        for case, w, m, rate in _prune_cases():
            judge_prune_layer(fn, w, m, rate, f"case '{case}'")
        if model is None:
            return f"passes {len(_prune_cases())} hand-made cases (pass model=model to check it on the network too)."
        params = dict(model.named_parameters())
        rates = layer_rates(model, PAPER_RATES)
        mask = Mask.ones_like(model)
        for r in (1, 2):
            for name in mask:
                judge_prune_layer(fn, params[name].detach(), mask[name], rates[name], f"round {r}, {name}")
            mask = prune_by_magnitude(model, mask, rates)
        return (f"passes {len(_prune_cases())} hand-made cases and two rounds on every layer of the trained "
                f"network ({mask.weights_remaining():.1%} of its weights left).")
    return _judge("prune_layer", cases)


# --- 03: the rewind and one round of IMP --------------------------------------------------------------

def _trained_pair(data, seed: int = 0) -> tuple[nn.Module, dict[str, torch.Tensor], nn.Module]:
    """A LeNet-300-100 at initialisation, its state, and a copy trained briefly on real data."""
    from lthkit.train import TrainConfig, train

    init = build_model("lenet300", data.info.input_shape, data.info.num_classes, seed=seed)
    trained = copy.deepcopy(init)
    train(trained, data, TrainConfig(iterations=30, eval_every=30, data_seed=seed), progress=False)
    return init, {k: v.detach().clone() for k, v in init.state_dict().items()}, trained.cpu()


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def _same(a: dict, b: dict, names=None) -> bool:
    return all(torch.equal(a[n], b[n]) for n in (names or a))


def judge_rewind(fn: Callable, trained: nn.Module, initial: dict, mask: Mask) -> nn.Module:
    given_initial = {k: v.clone() for k, v in initial.items()}
    trained_state = _state(trained)
    out = _run(fn, copy.deepcopy(trained), given_initial, {n: m.clone() for n, m in mask.items()})
    if not isinstance(out, nn.Module):
        raise Mistake(f"return the ticket (the model), not {type(out).__name__}")
    if not _same(given_initial, initial):
        raise Mistake("you changed `initial` in place: the next round, and the random-mask control, rewind to those "
                      "values; copy them into the model instead (model.load_state_dict(initial))")
    got = _state(out)
    weights = list(mask)
    if any(bool((got[n][mask[n] == 0] != 0).any()) for n in weights):
        raise Mistake("pruned weights are not zero: after loading the initial values, multiply each weight by its "
                      "mask")
    if _same(got, {n: trained_state[n] * mask[n] if n in mask else trained_state[n] for n in got}, weights):
        raise Mistake("you rewound to the trained weights: a ticket keeps the survivors' values from "
                      "initialisation (`initial`), not the ones training gave them")
    expected = {n: initial[n] * mask[n] if n in mask else initial[n] for n in initial}
    if not _same(got, expected, weights):
        close = all(torch.allclose(got[n], expected[n]) for n in weights)
        raise Mistake("the survivors are close to their initial values but not equal bit for bit: copy the values "
                      "(load_state_dict), do not recompute them" if close else
                      "the survivors do not hold their initial values: load `initial` into the model")
    if not _same(got, expected):
        raise Mistake("the biases are not rewound: the whole network goes back to initialisation, biases included "
                      "(they are not pruned, but they are rewound)")
    return out


@exercise("03.rewind")
def _rewind_exercise(fn, *, data) -> Verdict:
    def cases() -> str:
        init, initial, trained = _trained_pair(data)
        mask = prune_by_magnitude(trained, Mask.ones_like(trained), layer_rates(trained, PAPER_RATES))
        judge_rewind(fn, trained, initial, mask)
        return "gives the ticket bit for bit: the initial weights under the mask, biases rewound too."
    return _judge("rewind", cases)


class _RecordingTrainer:
    """The ``train`` a learner's round calls: real training, recording what it was given."""

    def __init__(self, data, iterations: int = 20):
        from lthkit.train import TrainConfig

        self.data, self.config = data, TrainConfig(iterations=iterations, eval_every=iterations)
        self.calls: list[tuple[dict, dict | None]] = []

    def __call__(self, model: nn.Module, mask=None):
        from lthkit.train import train

        self.calls.append((_state(model), {n: m.clone() for n, m in mask.items()} if mask is not None else None))
        train(model, self.data, self.config, mask=Mask(mask) if mask is not None else None, progress=False)
        model.cpu()
        return model


@exercise("03.imp-round")
def _imp_round_exercise(fn, *, data) -> Verdict:
    def cases() -> str:
        init, initial, trained = _trained_pair(data)
        rates = layer_rates(trained, PAPER_RATES)
        full = Mask.ones_like(trained)
        want_mask = prune_by_magnitude(trained, full, rates)
        trainer = _RecordingTrainer(data)
        out = _run(fn, copy.deepcopy(trained), {k: v.clone() for k, v in initial.items()},
                   {n: m.clone() for n, m in full.items()}, dict(rates), trainer)
        if not (isinstance(out, tuple) and len(out) == 2):
            raise Mistake(f"return two things, (new_mask, ticket), not {type(out).__name__}")
        new_mask, ticket = out
        try:
            new_mask = Mask(new_mask)
        except (TypeError, ValueError, AttributeError) as e:
            raise Mistake(f"the first thing returned must be the new mask, a dict of 0/1 tensors ({e})") from None
        if new_mask == full:
            raise Mistake("the mask you returned prunes nothing: prune the trained weights with prune_layer first")
        if new_mask == prune_by_magnitude(init, full, rates):
            raise Mistake("you pruned by the initial weights' magnitudes: prune the *trained* network, then rewind "
                          "the survivors")
        if new_mask != want_mask:
            raise Mistake("your new mask is not magnitude pruning of the trained weights at the given rates")
        if len(trainer.calls) != 1:
            raise Mistake(f"call train(ticket, new_mask) once; you called it {len(trainer.calls)} times")
        start, given_mask = trainer.calls[0]
        if given_mask is None:
            raise Mistake("you trained without the mask: pruned weights regrow in training. Pass it: "
                          "train(ticket, new_mask) (masks must be kept through training)")
        if Mask(given_mask) != want_mask:
            raise Mistake("you trained with the old mask: the weights pruned this round regrow. Pass the new mask")
        weights = list(want_mask)
        trained_state = _state(trained)
        if _same(start, {n: trained_state[n] * want_mask[n] for n in weights}, weights):
            raise Mistake("training started from the trained weights: rewind the survivors to `initial` before "
                          "training (this is fine-tuning, not a lottery ticket)")
        expected = rewind_to(copy.deepcopy(init), initial, want_mask)
        if not _same(start, _state(expected)):
            raise Mistake("training did not start from the ticket (the initial weights under the new mask): "
                          "check your rewind")
        reference = _RecordingTrainer(data)
        reference(expected, want_mask)
        if not isinstance(ticket, nn.Module) or not _same(_state(ticket), _state(expected)):
            raise Mistake("the second thing returned must be the ticket after training (the model you trained)")
        return ("prunes the trained weights, rewinds the survivors, trains with the new mask: bit for bit "
                "lthkit's round.")
    return _judge("imp_round", cases)


# --- 04: the controls ------------------------------------------------------------------------------------

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


# --- 07: SNIP's score, by hand -------------------------------------------------------------------------

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


# --- 08: edge-popup's mask and Zhou et al.'s signs, by hand ------------------------------------------

def _top_k_case(fn, scores: torch.Tensor, density: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The learner's mask of ``scores`` (a leaf that requires grad) and the gradient it passes back
    for an upstream gradient of 1, 2, 3, ..."""
    given = scores.clone().requires_grad_()
    out = _run(fn, given, density)
    if not torch.equal(given.detach(), scores):
        raise Mistake("you changed the scores in place: they are the parameters being learned; build a new tensor")
    if not isinstance(out, torch.Tensor) or out.shape != scores.shape:
        raise Mistake(f"return one mask value per score, a tensor of shape {tuple(scores.shape)}, "
                      f"not {getattr(out, 'shape', type(out).__name__)}")
    values = out.detach()
    if not bool(((values == 0) | (values == 1)).all()):
        if bool((((values - 0).abs() < 1e-4) | ((values - 1).abs() < 1e-4)).all()):
            raise Mistake("your mask is 0 or 1 only up to rounding (such as 0.99999994): (hard + a) - a rounds; "
                          "add the difference in brackets, hard + (a - a.detach()), which is exactly 0")
        raise Mistake("your mask holds values other than 0 and 1: keep (1) or drop (0) each weight")
    upstream = torch.arange(1.0, scores.numel() + 1).view_as(scores)
    grad = torch.autograd.grad((out * upstream).sum(), given, allow_unused=True)[0] if out.requires_grad else None
    return values, grad


@exercise("08.top-k-mask")
def _top_k_mask_exercise(fn) -> Verdict:
    def cases() -> str:
        scores = torch.tensor([0.3, -0.9, 0.1, 0.5, -0.2, 0.05, -0.6, 0.7, -0.15, 0.25])
        mask, grad = _top_k_case(fn, scores, 0.3)
        right = torch.zeros(10)
        right[[1, 7, 6]] = 1
        if not torch.equal(mask, right):
            signed = torch.zeros(10)
            signed[[7, 3, 0]] = 1
            if torch.equal(mask, signed):
                raise Mistake("you kept the largest scores with their signs (0.7, 0.5, 0.3): edge-popup keeps the "
                              "largest |score|, so -0.9 and -0.6 are kept too; rank scores.abs()")
            if int(mask.sum()) != 3:
                raise Mistake(f"keep round(density * n) weights: 3 of 10 at density 0.3, not {int(mask.sum())}")
            raise Mistake("keep the weights of the 3 largest |scores| (here -0.9, 0.7 and -0.6)")
        if grad is None or not bool(grad.ne(0).any()):
            raise Mistake("no gradient reaches the scores: the 0/1 mask is a step, whose derivative is zero. "
                          "Pass the gradient straight through: return hard + (a - a.detach()) with a = scores.abs()")
        upstream = torch.arange(1.0, 11.0)
        if torch.equal(grad, upstream * right * scores.sign()) or torch.equal(grad, upstream * right):
            raise Mistake("only the kept weights' scores get a gradient, so a dropped weight can never come back: "
                          "pass the gradient to every score, hard + (a - a.detach()), not hard * a")
        if not (torch.equal(grad, upstream * scores.sign()) or torch.equal(grad, upstream)):
            raise Mistake("the gradient should reach every score unchanged (straight through |score|): return "
                          "hard + (a - a.detach()) with a = scores.abs()")
        table = torch.tensor([[0.9, 0.8, 0.7, 0.6, 0.5], [0.1, 0.2, 0.3, 0.4, -0.05]])
        mask, _ = _top_k_case(fn, table, 0.4)
        whole = (table.abs() >= 0.6).float()
        if not torch.equal(mask, whole):
            if torch.equal(mask.sum(1), torch.tensor([2.0, 2.0])):
                raise Mistake("you kept the top scores of each row: a layer's scores compete all together; "
                              "rank the flattened tensor (scores.abs().flatten().topk(k))")
            raise Mistake("on a 2x5 tensor at density 0.4, keep the 4 largest |scores| of the whole tensor")
        mask, _ = _top_k_case(fn, torch.linspace(-1, 1, 10), 0.37)
        if int(mask.sum()) != 4:
            raise Mistake(f"at density 0.37 of 10 scores keep round(3.7) = 4, not {int(mask.sum())}: int() rounds "
                          "down")
        torch.manual_seed(0)
        layer = torch.randn(300, 100)
        for density in (0.05, 0.5, 0.9):
            mask, _ = _top_k_case(fn, layer, density)
            if int(mask.sum()) != round(density * layer.numel()):
                raise Mistake(f"at density {density} on fc2's 30,000 scores keep {round(density * 30000):,}, "
                              f"not {int(mask.sum()):,}")
            if float(layer.abs()[mask == 1].min()) < float(layer.abs()[mask == 0].max()):
                raise Mistake(f"at density {density} on fc2's scores a kept |score| is smaller than a dropped one")
        return ("keeps exactly round(density * n) weights of largest |score| across the whole tensor and passes "
                "the gradient straight through to every score.")
    return _judge("top_k_mask", cases)


@exercise("08.keep-signs")
def _keep_signs_exercise(fn) -> Verdict:
    def cases() -> str:
        initial = torch.tensor([0.5, -0.2, 0.1, -0.7, 0.3, -0.05])
        fresh = torch.tensor([-0.3, -0.4, 0.6, 0.8, 0.05, -0.9])
        right = torch.tensor([0.3, -0.4, 0.6, -0.8, 0.05, -0.9])
        given = initial.clone(), fresh.clone()
        out = _run(fn, *given)
        if not (torch.equal(given[0], initial) and torch.equal(given[1], fresh)):
            raise Mistake("you changed a tensor you were given in place: return a new one")
        if not isinstance(out, torch.Tensor) or out.shape != initial.shape:
            raise Mistake(f"return one weight per position, a tensor of shape {tuple(initial.shape)}")
        if torch.allclose(out, right):
            if not torch.equal(out, right):
                raise Mistake("close, but not exactly |fresh| with the initial sign: avoid arithmetic that rounds "
                              "(torch.copysign(fresh.abs(), initial), or fresh.abs() * initial.sign())")
        elif torch.allclose(out, fresh * initial.sign()):
            raise Mistake("fresh * sign(initial) flips the sign wherever the fresh value is negative: take the "
                          "fresh magnitude first, fresh.abs() * initial.sign()")
        elif torch.allclose(out, initial):
            raise Mistake("those are the initial weights themselves (the ticket): keep only their signs and take "
                          "the magnitudes from fresh")
        elif torch.allclose(out, initial.abs() * fresh.sign()):
            raise Mistake("the roles are swapped: the magnitudes come from fresh, the signs from initial")
        elif torch.allclose(out, fresh.abs()):
            raise Mistake("every weight is positive: give each the sign its initial value had")
        elif torch.allclose(out.abs(), out.abs()[0].expand_as(out)):
            raise Mistake("every weight has the same magnitude: that is a signed constant; take the magnitudes "
                          "from fresh")
        else:
            raise Mistake("each weight should be |fresh| with the sign of initial (here 0.3, -0.4, 0.6, -0.8, "
                          "0.05, -0.9)")
        torch.manual_seed(0)
        big_initial, big_fresh = torch.randn(300, 100), torch.randn(300, 100)
        out = _run(fn, big_initial.clone(), big_fresh.clone())
        if not (isinstance(out, torch.Tensor) and out.shape == big_initial.shape
                and torch.equal(out.abs(), big_fresh.abs()) and torch.equal(out.sign(), big_initial.sign())):
            raise Mistake("on a 300x100 layer your function does not give |fresh| with the initial signs everywhere")
        return "gives every weight its fresh magnitude and its initial sign."
    return _judge("keep_signs", cases)


# --- 09: which weights of a transformer IMP prunes --------------------------------------------------

@exercise("09.prunable-kinds")
def _prunable_kinds_exercise(fn) -> Verdict:
    from lthkit.models import ViT

    def cases() -> str:
        for depth in (2, 3):
            model = ViT((1, 28, 28), depth=depth)
            out = _run(fn, model)
            if not isinstance(out, dict):
                raise Mistake(f"return a dict {{weight name: kind}}, not {type(out).__name__}")
            right = model.prunable_kinds()
            extra, missing = set(out) - set(right), set(right) - set(out)
            if any(n.endswith("bias") for n in extra):
                raise Mistake("you included biases: as in the paper, only weights between units are pruned")
            if any("norm" in n for n in extra):
                raise Mistake("you included layer norms' scales: one per feature, each scales a whole feature of "
                              "every token; they are not connections and are not pruned")
            if {"cls", "pos"} & extra:
                raise Mistake("you included the class token or the positions: they are added to the tokens, not "
                              "connections between units; not pruned")
            if extra:
                raise Mistake(f"{sorted(extra)} are not weights of the network")
            if missing and depth == 3 and not set(ViT((1, 28, 28)).prunable_kinds()) - set(out):
                raise Mistake("right for two blocks only: with three blocks you missed "
                              f"{sorted(missing)}; loop over the model's parameters instead of naming them")
            if "embed.weight" in missing:
                raise Mistake("the patch embedding (embed.weight) is a weight matrix like any other: kind embedding")
            if missing:
                raise Mistake(f"you left out {sorted(missing)}")
            wrong = {n: (out[n], k) for n, k in right.items() if out[n] != k}
            if "head.weight" in wrong:
                raise Mistake(f"the head is the output layer: kind output, not {wrong['head.weight'][0]!r}; it is "
                              "pruned at its own, lower rate, as the paper's output layer is")
            if any(k == "attention" for _, k in wrong.values()):
                raise Mistake("the query-key-value projection (qkv) and the output projection (proj) are attention")
            if any(k == "mlp" for _, k in wrong.values()):
                raise Mistake("fc1 and fc2 inside a block are the block's mlp")
            if wrong:
                raise Mistake(f"wrong kinds: {wrong} (yours, the right one)")
        return "names exactly the weights IMP prunes, with their kinds, for any number of blocks."
    return _judge("transformer_kinds", cases)


# --- 10: a pruned layer stored compactly ------------------------------------------------------------

def _bitmask_case(fn, weight: torch.Tensor, keep: torch.Tensor) -> None:
    import numpy as np

    from lthkit.export import bitmask_layer

    given = weight.clone(), keep.clone()
    out = _run(fn, *given)
    if not (torch.equal(given[0], weight) and torch.equal(given[1], keep)):
        raise Mistake("you changed a tensor you were given in place: leave the weight and the mask as they are")
    if not (isinstance(out, tuple) and len(out) == 2 and all(isinstance(t, torch.Tensor) for t in out)):
        raise Mistake("return two tensors, (bits, values)")
    bits, values = out
    right = bitmask_layer(weight, keep)
    n, kept = weight.numel(), int(keep.sum())
    flat = keep.flatten().numpy()
    if bits.dtype == torch.bool or bits.numel() == n:
        raise Mistake(f"your bits take one byte per weight ({n:,} bytes here): pack 8 weights into each byte, "
                      "np.packbits(mask.flatten().numpy()), so they take ceil(n / 8)")
    if bits.dtype != torch.uint8:
        raise Mistake(f"store the bits as bytes, torch.uint8, not {bits.dtype}")
    if bits.numel() != math.ceil(n / 8):
        raise Mistake(f"{n} weights need ceil({n} / 8) = {math.ceil(n / 8)} bytes of bits, you wrote {bits.numel()}")
    if not torch.equal(bits, right["bits"]):
        if torch.equal(bits, torch.from_numpy(np.packbits(flat, bitorder="little"))):
            raise Mistake("the bit order is reversed: the first weight goes in the highest bit, numpy.packbits's "
                          "default (bitorder='big')")
        if torch.equal(bits, torch.from_numpy(np.packbits((weight != 0).flatten().numpy()))):
            raise Mistake("you read the mask from the weights' zeros: a kept weight can be exactly zero (here one "
                          "is), so pack the mask you were given")
        if torch.equal(bits, torch.from_numpy(np.packbits(keep.T.flatten().numpy()))):
            raise Mistake("your bits go column by column: flatten row by row (mask.flatten()), as the values")
        raise Mistake("your bits are not the mask, flattened row by row and packed 8 to the byte")
    if values.numel() == n:
        raise Mistake("you stored every weight, pruned zeros included: keep only the weights the mask keeps")
    if values.dtype != torch.float32:
        raise Mistake(f"store the values as float32 (4 bytes each), not {values.dtype}")
    if values.numel() != kept or not torch.equal(values, right["values"]):
        if values.numel() == int((weight != 0).sum()):
            raise Mistake("you kept the non-zero weights: a kept weight can be exactly zero, so select by the "
                          "mask, weight[mask]")
        if values.numel() == kept and torch.equal(values, weight.T[keep.T]):
            raise Mistake("your values go column by column: take them row by row, weight[mask], the order of the "
                          "bits")
        raise Mistake(f"the values should be the {kept} kept weights in row-major order, weight[mask]")


@exercise("10.bitmask")
def _bitmask_exercise(fn) -> Verdict:
    from lthkit.export import expand_layer

    def cases() -> str:
        weight = torch.tensor([[0.5, 0.0, -0.25, 0.0, 0.75, 0.0], [0.0, -1.5, 0.0, 0.0, 0.0, 2.0]])
        keep = torch.tensor([[True, True, True, False, True, False], [False, True, False, False, False, True]])
        _bitmask_case(fn, weight, keep)  # a kept weight (row 0, column 1) is exactly zero
        g = generator("exercise", 10)
        layer = torch.randn(300, 784, generator=g)
        keep = torch.rand(300, 784, generator=g) < 0.035
        layer = layer * keep
        _bitmask_case(fn, layer, keep)
        bits, values = fn(layer.clone(), keep.clone())
        back = expand_layer({"form": "bitmask", "shape": [300, 784], "bits": bits, "values": values})
        if not torch.equal(back, layer):
            raise Mistake("lthkit.export.expand_layer does not read your 300x784 layer back bit for bit")
        return (f"stores a 300x784 layer at 3.5% in {bits.numel() + 4 * values.numel():,} bytes instead of "
                f"{4 * layer.numel():,}, and lthkit reads it back bit for bit.")
    return _judge("to_bitmask", cases)
