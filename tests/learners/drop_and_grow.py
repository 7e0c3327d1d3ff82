"""Learners' drop-and-grow for RigL (notebook 12): drop_and_grow(weight, grad, mask, count, state) -> new mask, with
the dropped and grown weights set to zero and the grown weights' optimiser state reset, in place."""

import torch

from learners import Suite

suite = Suite("12.drop-and-grow")


def _drop(weight, mask, count):
    """The flat indices of the ``count`` alive weights of smallest magnitude."""
    scores = weight.abs().flatten().masked_fill(mask.flatten() == 0, float("inf"))
    return torch.topk(scores, count, largest=False).indices


def _grow(scores, candidates, count):
    """The flat indices of the ``count`` highest ``scores`` where ``candidates`` is true."""
    return torch.topk(scores.flatten().masked_fill(~candidates.flatten(), float("-inf")), count).indices


def _finish(weight, mask, state, drop, grow, reset=("exp_avg", "exp_avg_sq")):
    new = mask.clone().flatten()
    new[drop] = 0
    new[grow] = 1
    weight.view(-1)[drop] = 0
    weight.view(-1)[grow] = 0
    for key in reset:
        state[key].view(-1)[grow] = 0
    return new.view_as(mask)


# --- wrong -------------------------------------------------------------------------------------------


@suite.wrong(r"signed gradient")
def signed_gradient(weight, grad, mask, count, state):
    return _finish(weight, mask, state, _drop(weight, mask, count), _grow(grad, mask == 0, count))


@suite.wrong(r"alive already")
def grows_among_every_position(weight, grad, mask, count, state):
    every = torch.ones_like(mask, dtype=torch.bool)
    return _finish(weight, mask, state, _drop(weight, mask, count), _grow(grad.abs(), every, count))


@suite.wrong(r"grew back .* just dropped")
def grows_among_the_dead_after_dropping(weight, grad, mask, count, state):
    drop = _drop(weight, mask, count)
    after = mask.clone().flatten()
    after[drop] = 0
    return _finish(weight, mask, state, drop, _grow(grad.abs(), after.view_as(mask) == 0, count))


@suite.wrong(r"grown weights must start at zero")
def grown_weights_drawn_at_random(weight, grad, mask, count, state):
    new = _finish(weight, mask, state, _drop(weight, mask, count), _grow(grad.abs(), mask == 0, count))
    grown = (mask == 0) & (new == 1)
    weight[grown] = torch.randn(int(grown.sum())) * 0.05
    return new


@suite.wrong(r"grown weights must start at zero")
def grown_weights_take_a_gradient_step(weight, grad, mask, count, state):
    new = _finish(weight, mask, state, _drop(weight, mask, count), _grow(grad.abs(), mask == 0, count))
    grown = (mask == 0) & (new == 1)
    weight[grown] = -0.01 * grad[grown]
    return new


@suite.wrong(r"exp_avg of grown weights was kept")
def keeps_the_optimiser_state(weight, grad, mask, count, state):
    return _finish(weight, mask, state, _drop(weight, mask, count), _grow(grad.abs(), mask == 0, count), reset=())


@suite.wrong(r"exp_avg_sq of grown weights was kept")
def resets_only_the_first_moment(weight, grad, mask, count, state):
    return _finish(weight, mask, state, _drop(weight, mask, count), _grow(grad.abs(), mask == 0, count),
                   reset=("exp_avg",))


@suite.wrong(r"reset the optimiser's exp_avg of weights that stayed alive")
def resets_the_whole_state(weight, grad, mask, count, state):
    new = _finish(weight, mask, state, _drop(weight, mask, count), _grow(grad.abs(), mask == 0, count))
    state["exp_avg"].zero_()
    state["exp_avg_sq"].zero_()
    return new


@suite.wrong(r"optimiser's step")
def resets_the_step_too(weight, grad, mask, count, state):
    new = _finish(weight, mask, state, _drop(weight, mask, count), _grow(grad.abs(), mask == 0, count))
    state["step"].zero_()
    return new


@suite.wrong(r"most negative weights")
def drops_by_signed_weight(weight, grad, mask, count, state):
    scores = weight.flatten().masked_fill(mask.flatten() == 0, float("inf"))
    drop = torch.topk(scores, count, largest=False).indices
    return _finish(weight, mask, state, drop, _grow(grad.abs(), mask == 0, count))


@suite.wrong(r"smallest \|gradient\|: RigL drops by magnitude")
def drops_by_gradient(weight, grad, mask, count, state):
    scores = grad.abs().flatten().masked_fill(mask.flatten() == 0, float("inf"))
    drop = torch.topk(scores, count, largest=False).indices
    return _finish(weight, mask, state, drop, _grow(grad.abs(), mask == 0, count))


@suite.wrong(r"nothing moved")
def grows_first_then_drops(weight, grad, mask, count, state):
    grow = _grow(grad.abs(), mask == 0, count)
    new = mask.clone().flatten()
    new[grow] = 1
    weight.view(-1)[grow] = 0
    drop = _drop(weight, new.view_as(mask), count)
    new[drop] = 0
    return new.view_as(mask)


@suite.wrong(r"dropped only")
def ranks_dead_weights_for_dropping_too(weight, grad, mask, count, state):
    drop = torch.topk(weight.abs().flatten(), count, largest=False).indices
    return _finish(weight, mask, state, drop, _grow(grad.abs(), mask == 0, count))


@suite.wrong(r"changed the mask you were given")
def updates_the_mask_in_place(weight, grad, mask, count, state):
    drop, grow = _drop(weight, mask, count), _grow(grad.abs(), mask == 0, count)
    flat = mask.view(-1)
    flat[drop] = 0
    flat[grow] = 1
    weight.view(-1)[drop] = 0
    for key in ("exp_avg", "exp_avg_sq"):
        state[key].view(-1)[grow] = 0
    return mask


@suite.wrong(r"returned None")
def forgets_to_return(weight, grad, mask, count, state):
    _finish(weight, mask, state, _drop(weight, mask, count), _grow(grad.abs(), mask == 0, count))


@suite.wrong(r"\|gradient\| is smallest")
def grows_where_the_gradient_is_smallest(weight, grad, mask, count, state):
    return _finish(weight, mask, state, _drop(weight, mask, count), _grow(-grad.abs(), mask == 0, count))


@suite.wrong(r"random growth is SET's")
def grows_at_random(weight, grad, mask, count, state):
    g = torch.Generator().manual_seed(0)
    return _finish(weight, mask, state, _drop(weight, mask, count), _grow(torch.rand(mask.shape, generator=g),
                                                                          mask == 0, count))


@suite.wrong(r"weights you dropped are not zero")
def leaves_dropped_weights(weight, grad, mask, count, state):
    drop, grow = _drop(weight, mask, count), _grow(grad.abs(), mask == 0, count)
    kept = weight.clone()
    new = _finish(weight, mask, state, drop, grow)
    weight.view(-1)[drop] = kept.view(-1)[drop]
    return new


@suite.wrong(r"moved .* not count")
def grows_one_too_few(weight, grad, mask, count, state):
    return _finish(weight, mask, state, _drop(weight, mask, count - 1), _grow(grad.abs(), mask == 0, count - 1))


@suite.wrong(r"mask's shape")
def returns_it_flat(weight, grad, mask, count, state):
    return _finish(weight, mask, state, _drop(weight, mask, count), _grow(grad.abs(), mask == 0, count)).flatten()


# --- right -------------------------------------------------------------------------------------------


@suite.right
def with_topk_and_infinities(weight, grad, mask, count, state):
    return _finish(weight, mask, state, _drop(weight, mask, count), _grow(grad.abs(), mask == 0, count))


@suite.right
def with_argsort_over_indices(weight, grad, mask, count, state):
    alive = mask.flatten().nonzero().flatten()
    dead = (mask.flatten() == 0).nonzero().flatten()
    drop = alive[torch.argsort(weight.flatten()[alive].abs())[:count]]
    grow = dead[torch.argsort(grad.flatten()[dead].abs(), descending=True)[:count]]
    new = mask.clone().flatten()
    new[drop], new[grow] = 0.0, 1.0
    with torch.no_grad():
        weight.view(-1)[torch.cat([drop, grow])] = 0
    for value in state.values():
        if value.shape == weight.shape:
            value.view(-1)[grow] = 0
    return new.reshape(mask.shape)


@suite.right
def boolean_mask_and_where(weight, grad, mask, count, state):
    alive = mask.bool()
    threshold = weight.abs()[alive].sort().values[count - 1]
    dropped = alive & (weight.abs() <= threshold)
    scores = torch.where(alive, torch.full_like(grad, -1.0), grad.abs())
    grown = torch.zeros_like(alive).flatten()
    grown[scores.flatten().topk(count).indices] = True
    grown = grown.view_as(alive)
    weight[dropped | grown] = 0
    state["exp_avg"][grown] = 0
    state["exp_avg_sq"][grown] = 0
    return (alive & ~dropped) | grown


@suite.right
def also_resets_the_dropped_weights_state(weight, grad, mask, count, state):
    drop, grow = _drop(weight, mask, count), _grow(grad.abs(), mask == 0, count)
    new = _finish(weight, mask, state, drop, grow)
    for key in ("exp_avg", "exp_avg_sq"):
        state[key].view(-1)[drop] = 0
    return new


@suite.right
def in_double_precision(weight, grad, mask, count, state):
    return _finish(weight, mask, state, _drop(weight.double(), mask, count),
                   _grow(grad.double().abs(), mask == 0, count))
