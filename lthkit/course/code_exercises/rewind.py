"""Notebook 03's code exercises: the rewind and one round of IMP."""

from __future__ import annotations

import copy
from collections.abc import Callable

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
from lthkit.course.verdicts import Verdict, exercise
from lthkit.masks import Mask, layer_rates, prune_by_magnitude
from lthkit.models import build_model
from lthkit.rewind import rewind_to


def _trained_pair(data, seed: int = 0) -> tuple[nn.Module, dict[str, torch.Tensor], nn.Module]:
    """A LeNet-300-100 at initialisation, its state, and a copy trained briefly on real data."""
    from lthkit.train import TrainConfig, train

    init = build_model("lenet300", data.info.input_shape, data.info.num_classes, seed=seed)
    trained = copy.deepcopy(init)
    train(trained, data, TrainConfig(iterations=30, eval_every=30, data_seed=seed), progress=False)
    return init, {k: v.detach().clone() for k, v in init.state_dict().items()}, trained.cpu()




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
