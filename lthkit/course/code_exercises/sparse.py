"""Notebook 12's code exercise: RigL's drop-and-grow of one layer, by hand.

The learner's ``drop_and_grow(weight, grad, mask, count, state)`` returns the layer's new mask, with
``weight`` and the optimiser's ``state`` changed in place. It is run on a small hand-made layer built so
that each classic mistake picks other positions (the largest gradients sit on alive weights, on a weight
about to be dropped, and on dead positions with negative gradients; the optimiser's moments are non-zero
at dead positions, as for connections dropped by an earlier update) and on a layer of LeNet-300-100's
size. The first mistake found is named.
"""

from __future__ import annotations

import torch

from lthkit.course.code_exercises.common import Mistake, _judge, _run
from lthkit.course.verdicts import Verdict, exercise
from lthkit.dynamic_masks import rigl_update
from lthkit.seeds import generator


def drop_and_grow_reference(weight, grad, mask, count, state):
    """lthkit's RigL update, with the notebook's signature."""
    return rigl_update(weight, grad, mask, count, state)


def _hand_made() -> tuple:
    weight = torch.tensor([[0.50, -0.01, 0.00, 0.00, -0.90],
                           [0.00, 0.30, 0.02, 0.00, 0.00],
                           [-0.60, 0.00, 0.00, -0.03, 0.40]])
    mask = (weight != 0).float()
    grad = torch.tensor([[9.00, 8.50, 0.10, -5.00, 3.00],
                         [0.20, 0.25, 6.00, 0.30, -4.50],
                         [0.15, -2.00, 4.00, 0.05, 9.50]])
    g = generator("check-drop-and-grow", 0)
    state = {"step": torch.tensor(30.0), "exp_avg": torch.rand(3, 5, generator=g) + 0.1,
             "exp_avg_sq": torch.rand(3, 5, generator=g) + 0.1}
    return weight, grad, mask, 3, state


def _layer_sized() -> tuple:
    """A 100 x 300 layer (LeNet-300-100's fc2) with 4% of its weights alive, mid-training."""
    g = generator("check-drop-and-grow", 1)
    mask = torch.zeros(30000)
    mask[torch.randperm(30000, generator=g)[:1200]] = 1
    mask = mask.view(100, 300)
    weight = torch.randn(100, 300, generator=g) * 0.1 * mask
    grad = torch.randn(100, 300, generator=g) * 0.01
    state = {"step": torch.tensor(700.0), "exp_avg": torch.randn(100, 300, generator=g) * 1e-3,
             "exp_avg_sq": torch.rand(100, 300, generator=g) * 1e-5 + 1e-7}
    return weight, grad, mask, 158, state


def _top(scores: torch.Tensor, where: torch.Tensor, k: int, largest: bool = True) -> set[int]:
    flat, ok = scores.flatten().double(), where.flatten().bool()
    idx = ok.nonzero().flatten()
    order = torch.argsort(flat[idx], descending=largest, stable=True)
    return set(idx[order[:k]].tolist())


def _positions(t: torch.Tensor) -> set[int]:
    return set(t.flatten().nonzero().flatten().tolist())


def _judge_masks(old: torch.Tensor, new: torch.Tensor, weight0, grad, count: int) -> None:
    """Name what is wrong with the new mask, if anything."""
    alive, dead = old == 1, old == 0
    dropped, grown = _positions(alive & (new == 0)), _positions(dead & (new == 1))
    n_old, n_new = int(alive.sum()), int((new == 1).sum())
    right_drop = _top(weight0.abs(), alive, count, largest=False)
    right_grow = _top(grad.abs(), dead, count)
    if dropped == set() and grown == set():
        raise Mistake("your mask is the one you were given: nothing moved. If you grow first, the grown weights "
                      "(zero) are the smallest alive and are dropped at once; drop first, then grow among the "
                      "positions that were dead before the update")
    if n_new < n_old:
        raise Mistake(f"the layer keeps {n_new} connections instead of {n_old}: some of the positions you grew were "
                      f"alive already. Grow only among the dead positions (mask == 0), so that exactly {count} "
                      f"new connections appear")
    if n_new > n_old:
        raise Mistake(f"the layer keeps {n_new} connections instead of {n_old}: you dropped only {len(dropped)} alive "
                      f"connections. Dead weights are zero, so ranking all positions by |w| picks them first; rank "
                      f"only the alive ones (mask == 1) and drop exactly {count}")
    if len(dropped) != count:
        regrown = right_drop - dropped
        after = old.flatten().clone()
        after[list(right_drop)] = 0
        candidate = after.clone()
        candidate[list(_top(grad.abs(), after == 0, count))] = 1
        if regrown and torch.equal(candidate.view_as(new), new):
            raise Mistake(f"you grew back {len(regrown)} of the connections you had just dropped: dropped and grown "
                          f"positions must be disjoint, so grow only among the positions dead before the update "
                          f"(the mask you were given == 0)")
        raise Mistake(f"you moved {len(dropped)} connections, not count = {count}: drop exactly {count} and grow "
                      f"exactly {count}")
    if dropped != right_drop:
        if dropped == _top(weight0, alive, count, largest=False):
            raise Mistake("you dropped the most negative weights: RigL drops the smallest magnitudes |w|, the "
                          "weights closest to zero, whatever their sign")
        if dropped == _top(grad.abs(), alive, count, largest=False):
            raise Mistake("you dropped the alive weights with the smallest |gradient|: RigL drops by magnitude |w| "
                          "and uses the gradient only to grow")
        raise Mistake(f"of the {count} connections you dropped, {len(dropped & right_drop)} are among the {count} "
                      f"alive weights of smallest |w|: drop exactly those (rank alive weights by weight.abs())")
    if grown != right_grow:
        if grown == _top(grad, dead, count):
            raise Mistake("you ranked the dead positions by the signed gradient: RigL grows where |gradient| is "
                          "largest; a large negative gradient matters as much as a large positive one")
        if grown == _top(grad.abs(), dead, count, largest=False):
            raise Mistake("you grew where |gradient| is smallest: RigL grows where it is largest, the positions "
                          "whose weight would lower the loss fastest")
        raise Mistake(f"of the {count} positions you grew, {len(grown & right_grow)} are among the {count} dead "
                      f"positions of largest |gradient|: grow exactly those (random growth is SET's, not RigL's)")


def _judge_effects(old, new, weight0, weight, state0, state) -> None:
    """Name what the update did wrong to the weights or the optimiser's state."""
    grown = (old == 0) & (new == 1)
    dropped = (old == 1) & (new == 0)
    kept = (old == 1) & (new == 1)
    if bool((weight[grown] != 0).any()):
        raise Mistake("grown weights must start at zero (weight[grown] = 0): a new connection enters as a weight that "
                      "has not moved yet, so the loss does not jump")
    if bool((weight[dropped] != 0).any()):
        raise Mistake("the weights you dropped are not zero: set weight[dropped] = 0 in place, or the network keeps "
                      "using them")
    if not torch.equal(weight[kept], weight0[kept]):
        raise Mistake("you changed weights that stay alive: an update moves connections, it does not train")
    for key in ("exp_avg", "exp_avg_sq"):
        if key not in state or not isinstance(state[key], torch.Tensor) or state[key].shape != weight.shape:
            raise Mistake(f"the optimiser's state lost its {key} (or its shape): zero entries in place, "
                          f"state[{key!r}][grown] = 0")
        if bool((state[key][grown] != 0).any()):
            raise Mistake(f"the optimiser's {key} of grown weights was kept: reset it to zero at the grown positions "
                          f"(every tensor of the weight's shape in state), or a new connection starts with the "
                          f"momentum of one dropped earlier")
        if not torch.equal(state[key][kept], state0[key][kept]):
            raise Mistake(f"you reset the optimiser's {key} of weights that stayed alive: only the grown ones start "
                          f"afresh; the others keep their moments")
    if not torch.equal(state.get("step"), state0["step"]):
        raise Mistake("you changed the optimiser's step: it counts the steps of the whole tensor; leave it as it is")


@exercise("12.drop-and-grow", reference=drop_and_grow_reference)
def _drop_and_grow_exercise(fn) -> Verdict:
    def cases() -> str:
        for make in (_hand_made, _layer_sized):
            weight0, grad0, mask0, count, state0 = make()
            weight, grad, mask = weight0.clone(), grad0.clone(), mask0.clone()
            state = {k: v.clone() for k, v in state0.items()}
            out = _run(fn, weight, grad, mask, count, state)
            if not torch.equal(mask, mask0):
                raise Mistake("you changed the mask you were given in place: build the new mask on a copy "
                              "(mask.clone()) and return it")
            if out is None:
                raise Mistake("your function returned None: return the new mask")
            if not isinstance(out, torch.Tensor) or out.shape != mask0.shape:
                shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                raise Mistake(f"return the new mask as a tensor of the mask's shape {tuple(mask0.shape)}, not {shape}")
            new = out.detach().cpu().float()
            if not bool(((new == 0) | (new == 1)).all()):
                raise Mistake("your mask holds values other than 0 and 1")
            _judge_masks(mask0, new, weight0, grad0, count)
            _judge_effects(mask0, new, weight0, weight, state0, state)
        return ("drops the smallest magnitudes and grows where |gradient| is largest among the dead positions, "
                "disjoint, with exact counts, grown weights at zero and their optimiser state reset.")
    return _judge("drop_and_grow", cases)
