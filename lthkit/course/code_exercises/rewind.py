"""Notebook 03's code exercises: the rewind and one round of IMP."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping

import torch
from torch import nn

from lthkit.course.code_exercises.common import (
    PAPER_RATES,
    Mistake,
    _judge,
    _run,
    _same,
    _state,
)
from lthkit.course.code_exercises.pruning import judge_pruned, name_the_rounding
from lthkit.course.verdicts import Verdict, exercise
from lthkit.masks import (
    Mask,
    count_to_prune,
    layer_rates,
    prune_by_magnitude,
    prune_layer,
)
from lthkit.models import build_model
from lthkit.rewind import rewind_to


def _trained_pair(data, seed: int = 0) -> tuple[nn.Module, dict[str, torch.Tensor], nn.Module]:
    """A LeNet-300-100 at initialisation, its state, and a copy trained briefly on real data.

    Its initial biases are not zero (the paper's are): a rewind that zeroes the biases instead of
    rewinding them would pass otherwise."""
    from lthkit.train import TrainConfig, train

    init = build_model("lenet300", data.info.input_shape, data.info.num_classes, seed=seed)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in init.named_parameters():
            if name.endswith("bias"):
                p.normal_(0.0, 0.01, generator=g)
    trained = copy.deepcopy(init)
    train(trained, data, TrainConfig(iterations=30, eval_every=30, data_seed=seed), progress=False)
    return init, {k: v.detach().clone() for k, v in init.state_dict().items()}, trained.cpu()


def _plain(out: nn.Module) -> None:
    """Refuse a model that still carries torch.nn.utils.prune's reparametrisation: lthkit's IMP loop and
    ``train`` read and mask ``model.<layer>.weight`` as a parameter, which prune turns into a computed
    attribute (the parameter becomes ``weight_orig``)."""
    wrapped = sorted(k[: -len("_orig")] for k in out.state_dict() if k.endswith("_orig"))
    if wrapped:
        raise Mistake(f"your ticket still carries torch.nn.utils.prune's weight_orig and weight_mask "
                      f"({', '.join(wrapped)}): IMP's loop trains plain weights, so make the pruning permanent "
                      f"before returning it, torch.nn.utils.prune.remove(module, 'weight') for each layer")


def judge_rewind(fn: Callable, trained: nn.Module, initial: dict, mask: Mask) -> nn.Module:
    given_initial = {k: v.clone() for k, v in initial.items()}
    trained_state = _state(trained)
    out = _run(fn, copy.deepcopy(trained), given_initial, {n: m.clone() for n, m in mask.items()})
    if not isinstance(out, nn.Module):
        raise Mistake(f"return the ticket (the model), not {type(out).__name__}")
    if not _same(given_initial, initial):
        raise Mistake("you changed `initial` in place: the next round, and the random-mask control, rewind to those "
                      "values; copy them into the model instead (model.load_state_dict(initial))")
    _plain(out)
    got = _state(out)
    if set(got) != set(initial):
        raise Mistake(f"return the model you were given, rewound: its parameters are {sorted(initial)}, yours "
                      f"{sorted(got)}")
    weights = list(mask)
    for n in weights:
        survivors, pruned = got[n][mask[n] == 1], got[n][mask[n] == 0]
        if bool((pruned != 0).any()):
            if bool((survivors == 0).all()):
                raise Mistake(f"{n}: you zeroed the survivors and kept the pruned weights: 1 in the mask marks a "
                              f"weight that survives, so multiply by the mask, not by 1 - mask")
            raise Mistake(f"{n}: pruned weights are not zero: after loading the initial values, multiply each "
                          f"weight by its mask")
    if _same(got, {n: trained_state[n] * mask[n] if n in mask else trained_state[n] for n in got}, weights):
        raise Mistake("you rewound to the trained weights: a ticket keeps the survivors' values from "
                      "initialisation (`initial`), not the ones training gave them")
    expected = {n: initial[n] * mask[n] if n in mask else initial[n] for n in initial}
    if not _same(got, expected, weights):
        close = all(torch.allclose(got[n], expected[n]) for n in weights)
        raise Mistake("the survivors are close to their initial values but not equal bit for bit: copy the values "
                      "(load_state_dict), do not recompute them" if close else
                      "the survivors do not hold their initial values: load `initial` into the model")
    _judge_biases(got, expected, trained_state)
    return out


def _judge_biases(got: dict, expected: dict, trained_state: dict) -> None:
    """The weights are right: say what is wrong with the rest (the biases), if anything."""
    wrong = [n for n in expected if not torch.equal(got[n], expected[n])]
    if not wrong:
        return
    if all(bool((got[n] == 0).all()) for n in wrong):
        raise Mistake(f"you set the biases to zero ({', '.join(wrong)}) instead of rewinding them: their initial "
                      f"values in `initial` are not zero here, so load them from `initial` with the weights")
    trained = all(torch.equal(got[n], trained_state[n]) for n in wrong)
    held = ", they hold their trained values" if trained else ""
    raise Mistake(f"the biases are not rewound ({', '.join(wrong)}{held}): "
                  f"the whole network goes back to initialisation, biases included (they are not pruned, but "
                  f"they are rewound)")


def _rewind_reference(model: nn.Module, initial: dict, mask: dict) -> nn.Module:
    """lthkit's rewind with the learner's signature, as lthkit's IMP loop runs it (``rewind_to``)."""
    return rewind_to(model, initial, mask)


@exercise("03.rewind", reference=_rewind_reference)
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


def _tied_case(trained: nn.Module) -> tuple[nn.Module, Mask, dict[str, float]]:
    """A later round: a mask that pruned before, weights on a coarse grid (many tie at any threshold)
    and zero where pruned, as training under the mask leaves them, and rates that make rate x alive
    fractional (x.5 above an even count in fc1, x.3 in fc2, x.5 above an odd count in fc3), so that
    floor, ceil, round-half-even and thresholds that keep or drop every tie each miscount somewhere."""
    model = copy.deepcopy(trained)
    alive = {"fc1.weight": 188162, "fc2.weight": 24003, "fc3.weight": 907}
    rates = {"fc1.weight": 0.25, "fc2.weight": 0.1, "fc3.weight": 0.5}
    params = dict(model.named_parameters())
    masks = {}
    with torch.no_grad():
        for name, keep in alive.items():
            w = params[name]
            w.copy_(torch.round(w * 200) / 200)
            flat = torch.ones(w.numel())
            flat[torch.argsort(w.abs().flatten(), stable=True)[: w.numel() - keep]] = 0
            masks[name] = flat.view_as(w)
    mask = Mask(masks)
    return mask.apply_(model), mask, rates


def _judge_new_mask(trained: nn.Module, init: nn.Module, mask: Mask, rates: dict, new_mask, case: str) -> Mask:
    """The learner's new mask, once it is magnitude pruning of the trained weights, layer by layer."""
    if not isinstance(new_mask, Mapping) or set(new_mask) != set(mask):
        raise Mistake(f"{case}: the first thing returned must be the new mask, a dict with a 0/1 tensor for each "
                      f"of {sorted(mask)}, not {type(new_mask).__name__}")
    for n in mask:
        t = new_mask[n]
        if not isinstance(t, torch.Tensor) or t.shape != mask[n].shape:
            raise Mistake(f"{case}, {n}: the new mask must be a tensor of the weight's shape {tuple(mask[n].shape)}, "
                          f"not {getattr(t, 'shape', type(t).__name__)}")
    try:
        new_mask = Mask({n: new_mask[n].cpu() for n in mask})
    except ValueError as e:
        raise Mistake(f"{case}: {e}: a mask holds only 0 and 1") from None
    if new_mask == mask:
        raise Mistake(f"{case}: the mask you returned prunes nothing: prune the trained weights with prune_layer first")
    if new_mask == prune_by_magnitude(init, mask, rates):
        raise Mistake(f"{case}: you pruned by the initial weights' magnitudes: prune the *trained* network, then "
                      f"rewind the survivors")
    params = {n: p.detach().cpu() for n, p in trained.named_parameters()}
    removed = {n: mask[n].bool() & ~new_mask[n].bool() for n in mask}
    name_the_rounding([(rates[n], mask.alive(n), int(removed[n].sum()), f"{case}, {n}") for n in mask])
    wrong_counts = [n for n in mask if int(removed[n].sum()) != count_to_prune(rates[n], mask.alive(n))]
    if wrong_counts and _ranked_together(params, removed, new_mask):
        n = wrong_counts[0]
        raise Mistake(f"{case}: you ranked the weights of the whole network together (global pruning): {n} lost "
                      f"{int(removed[n].sum())} weights instead of {count_to_prune(rates[n], mask.alive(n))}; prune "
                      f"each layer separately, at its own rate rates[name] (prune_layer on each weight)")
    for n in mask:
        judge_pruned(params[n], mask[n], rates[n], new_mask[n], f"{case}, {n}")
    return new_mask


def _ranked_together(params: dict, removed: dict, new_mask: Mask) -> bool:
    """Whether every weight removed anywhere is no larger than every weight kept anywhere."""
    top = max(float(params[n].abs()[removed[n]].max()) for n in removed if bool(removed[n].any()))
    low = min(float(params[n].abs()[new_mask[n].bool()].min()) for n in removed if bool(new_mask[n].any()))
    return top <= low


def _judge_round(fn, data, init: nn.Module, initial: dict, trained: nn.Module, mask: Mask, rates: dict,
                 case: str) -> None:
    """Run the learner's round on one (trained, mask, rates) and raise ``Mistake`` unless it is lthkit's."""
    trainer = _RecordingTrainer(data)
    out = _run(fn, copy.deepcopy(trained), {k: v.clone() for k, v in initial.items()},
               {n: m.clone() for n, m in mask.items()}, dict(rates), trainer)
    if not (isinstance(out, tuple) and len(out) == 2):
        raise Mistake(f"return two things, (new_mask, ticket), not {type(out).__name__}")
    if isinstance(out[0], nn.Module) and not isinstance(out[1], nn.Module):
        raise Mistake("you returned (ticket, new_mask): return them the other way round, (new_mask, ticket)")
    once = (f"call train(ticket, new_mask) once, after pruning and rewinding; you called it {len(trainer.calls)} "
            f"times")
    if len(trainer.calls) > 1:  # training before pruning changes the weights the mask is judged on
        raise Mistake(once)
    new_mask = _judge_new_mask(trained, init, mask, rates, out[0], case)
    ticket = out[1]
    if not trainer.calls:
        raise Mistake(once)
    start, given_mask = trainer.calls[0]
    if given_mask is None:
        raise Mistake("you trained without the mask: pruned weights regrow in training. Pass it: "
                      "train(ticket, new_mask) (masks must be kept through training)")
    if Mask(given_mask) != new_mask:
        raise Mistake("you trained with the old mask: the weights pruned this round regrow. Pass the new mask"
                      if Mask(given_mask) == mask else "you trained with another mask than the one you returned: "
                      "train(ticket, new_mask) with the new mask")
    weights = list(new_mask)
    trained_state = _state(trained)
    if _same(start, {n: trained_state[n] * new_mask[n] for n in weights}, weights):
        raise Mistake("training started from the trained weights: rewind the survivors to `initial` before "
                      "training (this is fine-tuning, not a lottery ticket)")
    expected = rewind_to(copy.deepcopy(init), initial, new_mask)
    want = _state(expected)
    if not _same(start, want):
        if _same(start, want, weights):
            raise Mistake("training started with the biases not rewound: rewind every parameter to `initial`, "
                          "biases included, before training")
        raise Mistake("training did not start from the ticket (the initial weights under the new mask): "
                      "check your rewind")
    _RecordingTrainer(data)(expected, new_mask)
    if not isinstance(ticket, nn.Module) or not _same(_state(ticket), _state(expected)):
        raise Mistake("the second thing returned must be the ticket after training (the model you trained)")


def _imp_round_reference(trained: nn.Module, initial: dict, mask: dict, rates: dict, train: Callable):
    """lthkit's round with the learner's signature: ``prune_layer`` on each layer, ``rewind_to``, train."""
    params = dict(trained.named_parameters())
    new_mask = {n: prune_layer(params[n].detach(), m, rates[n]) for n, m in mask.items()}
    ticket = rewind_to(trained, initial, new_mask)
    train(ticket, new_mask)
    return new_mask, ticket


@exercise("03.imp-round", reference=_imp_round_reference)
def _imp_round_exercise(fn, *, data) -> Verdict:
    def cases() -> str:
        init, initial, trained = _trained_pair(data)
        rates = layer_rates(trained, PAPER_RATES)
        _judge_round(fn, data, init, initial, trained, Mask.ones_like(trained), rates, "round 1")
        later, mask, later_rates = _tied_case(trained)
        _judge_round(fn, data, init, initial, later, mask, later_rates, "a later round, with ties")
        return ("prunes the trained weights, rewinds the survivors, trains with the new mask: bit for bit "
                "lthkit's round, in round 1 and in a later round with ties and fractional counts.")
    return _judge("imp_round", cases)
