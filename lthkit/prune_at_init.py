"""Pruning at initialisation: choosing a mask before any training.

The lottery ticket hypothesis finds its masks by training, pruning and rewinding, round
after round. Pruning at initialisation asks whether a score computed once, on the untrained
network, can pick as good a mask:

- magnitude: ``|w|``, IMP's rule applied in one shot at initialisation;
- SNIP (Lee et al. 2019): ``|g * w|``, how much the loss reacts to removing each weight;
- GraSP (Wang et al. 2020): ``w * Hg``, how removing each weight changes the gradient's norm;
- SynFlow (Tanaka et al. 2020): ``|w * dR/dw|`` of a linearised network, with no data at all;
- random: uniform scores, the baseline every method must beat.

Every score function returns ``{weight name: score}`` over ``prunable_layers(model)``, and
lower scores go first. It reads the model through ``torch.func.functional_call`` on copies
of its tensors, so the caller's weights, buffers, ``.grad``, ``requires_grad`` and
train/eval mode are as they were. Its keyword-only ``mask`` is applied to those copies:
pruned weights count as zero, and their scores do not matter since ``prune_at_init``
ranks only the weights still alive.

``prune_at_init`` ranks the scores and keeps exactly the ``density`` asked for, globally or
in each layer, in one shot or over an exponential schedule that rescores as it goes. It
calls its score function as ``scores_fn(model, mask=mask)``; bind the other arguments first::

    snip = functools.partial(snip_scores, images=batch.x, labels=batch.y)
    mask = prune_at_init(model, snip, density=0.01)
    synflow = functools.partial(synflow_scores, input_shape=(1, 28, 28))
    mask = prune_at_init(model, synflow, density=0.01, steps=100)

Frankle et al. (2021, "Pruning Neural Networks at Initialization: Why are We Missing the
Mark?") check these methods by breaking what they found: shuffle each layer's mask
(``masks.random_mask_like`` keeps each layer's count), re-initialise the survivors
(``rewind.reinitialize``), or keep the lowest scores instead (``invert=True``). Where
accuracy survives shuffling and re-initialisation, as they found for every one of these
methods, what the method chose is how many weights each layer keeps, not which ones.

Layer collapse, a layer left with no weight at all, disconnects the output from the input.
``prune_at_init`` does not refuse such a mask: an experiment reports it
(``collapsed_layers``), and code that needs a network able to learn calls
``check_no_collapse`` first.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from lthkit.masks import Mask, _count, _prune_smallest
from lthkit.models import prunable_layers

Scores = dict[str, torch.Tensor]
SCOPES = ("global", "layerwise")


def magnitude_scores(model: nn.Module, *, mask: Mask | None = None) -> Scores:
    """``|w|``: IMP's rule, applied once at initialisation instead of after training."""
    return {name: w.abs() for name, w in _masked_weights(model, mask).items()}


def random_scores(model: nn.Module, generator: torch.Generator, *, mask: Mask | None = None) -> Scores:
    """Uniform random scores: with ``scope="layerwise"``, random pruning at the same density in
    every layer, counted exactly as the other methods are.

    This is the random arm at equal sparsity. The shuffle check is another thing, a random
    mask with each layer's count taken from a method's mask: ``masks.random_mask_like``.
    """
    return {name: torch.rand(w.shape, generator=generator).to(w.device)
            for name, w in _masked_weights(model, mask).items()}


def snip_scores(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *,
                mask: Mask | None = None) -> Scores:
    """SNIP's connection sensitivity ``|g * w|``, with ``g`` the gradient of the mean
    cross-entropy over ``images`` (one batch; SNIP used 100 to 128 images).

    ``g * w`` is the derivative of the loss with respect to a multiplicative gate on each
    weight: to first order, how much the loss changes when the weight is removed, whether
    it would rise or fall.
    Batch norm uses the batch's statistics (train mode), as the first training step will;
    its running statistics are not updated.
    """
    weights = _leaves(_masked_weights(model, mask))
    with _mode(model, training=True):
        loss = F.cross_entropy(functional_call(model, _state(model, weights), (images,)), labels)
    grads = torch.autograd.grad(loss, list(weights.values()))
    return {name: (g * w).abs().detach() for (name, w), g in zip(weights.items(), grads)}


def grasp_scores(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *,
                 temperature: float = 200.0, mask: Mask | None = None) -> Scores:
    """GraSP's score ``w * Hg``, lowest removed: the weights whose removal keeps the gradient
    flowing best go first.

    ``g`` is the gradient of the mean cross-entropy of the logits divided by ``temperature``
    (200 in Wang et al.'s code and in Tanaka et al.'s: it flattens the untrained network's
    softmax) and ``Hg`` its Hessian-gradient product, both with respect to the prunable
    weights alone, over the one batch ``images``.
    Removing weight ``q`` moves the weights by ``-w_q`` along ``q``, which changes the squared
    gradient norm by ``-2 w_q (Hg)_q`` to first order. The paper scores ``S(-w) = -w * Hg``
    and removes the *highest* scores: the weights whose removal raises the gradient norm the
    most, or lowers it the least. ``w * Hg`` is ``-S(-w)``, so removing the lowest removes
    the same weights, and ``prune_at_init`` treats GraSP like every other score.

    The scores are signed; never take their absolute value. Batch norm is in train mode, as
    for SNIP.
    """
    weights = _leaves(_masked_weights(model, mask))
    with _mode(model, training=True):
        logits = functional_call(model, _state(model, weights), (images,))
    loss = F.cross_entropy(logits / temperature, labels)
    grads = torch.autograd.grad(loss, list(weights.values()), create_graph=True)
    grad_dot_stopped_grad = sum((g * g.detach()).sum() for g in grads)
    hessian_grads = torch.autograd.grad(grad_dot_stopped_grad, list(weights.values()), materialize_grads=True)
    return {name: (w * hg).detach() for (name, w), hg in zip(weights.items(), hessian_grads)}


def synflow_scores(model: nn.Module, input_shape: tuple[int, ...], *, mask: Mask | None = None) -> Scores:
    """SynFlow's synaptic saliency ``|w * dR/dw|``, in float64, computed without data.

    Every parameter and floating-point buffer is replaced by its absolute value (as in
    Tanaka et al.'s code), so every ReLU passes everything and the network becomes a
    positive linear map; ``R`` is the sum of its outputs for one all-ones input of
    ``input_shape`` (no batch dimension). Batch norm is in eval mode, as in their code: a
    fixed affine map, where train mode would normalise by the statistics of that one
    synthetic image. Float64, because ``R`` is a product over layers and overflows float32
    in deep networks.

    For a network without biases each layer's scores sum to ``R`` (the conservation law
    that lets iterative SynFlow avoid layer collapse). Scores are returned in float64.
    """
    weights = _leaves({name: w.abs().double() for name, w in _masked_weights(model, mask).items()})
    state = {name: (t.detach().abs().double() if t.is_floating_point() else t.clone())
             for name, t in [*model.named_parameters(), *model.named_buffers()]}
    state.update(weights)
    ones = torch.ones(1, *input_shape, dtype=torch.float64, device=next(iter(weights.values())).device)
    with _mode(model, training=False):
        flow = functional_call(model, state, (ones,)).sum()
    grads = torch.autograd.grad(flow, list(weights.values()))
    return {name: (w * g).abs().detach() for (name, w), g in zip(weights.items(), grads)}


def prune_at_init(model: nn.Module, scores_fn: Callable[..., Mapping[str, torch.Tensor]],
                  density: float | Mapping[str, float], *,
                  mask: Mask | None = None, scope: str = "global", steps: int = 1,
                  invert: bool = False) -> Mask:
    """A mask keeping the ``density`` highest-scoring prunable weights; ``model`` is unchanged.

    ``density`` is the fraction of prunable weights kept, what ``Mask.weights_remaining()``
    reports afterwards: 0.01 keeps 1% (99% sparsity). ``scope="global"`` keeps exactly
    ``round(density * total)`` weights wherever they score highest; ``"layerwise"`` keeps
    ``round(density * size)`` in each layer, ``density`` being one number for every layer or
    one per layer (``{weight name: density}``, such as the per-layer sparsities IMP reaches). Rounding is halves up and ties are broken by
    position (as in ``lthkit.masks``), so the counts are exact.

    With ``steps > 1`` the mask shrinks on an exponential schedule, keeping a fraction
    ``density ** (k / steps)`` after step ``k`` and calling ``scores_fn`` again with the mask
    so far before each step; step ``steps`` lands exactly on ``density``. SynFlow needs this
    (Tanaka et al. use 100 steps); it works for SNIP too. A starting ``mask`` is continued
    from its own density, and only its alive weights are ranked, so a pruned weight never
    comes back. ``invert=True`` keeps the lowest scores instead (Frankle et al. 2021's check).

    The result may have collapsed layers; see ``collapsed_layers`` and ``check_no_collapse``.
    """
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}: give 'global' (one ranking across all layers) "
                         f"or 'layerwise' (the same density in every layer)")
    per_layer = isinstance(density, Mapping)
    if per_layer:
        if scope != "layerwise" or set(density) != set(prunable_layers(model)):
            raise ValueError(f"a density per layer needs scope='layerwise' and one density for each of "
                             f"{list(prunable_layers(model))}, got scope {scope!r} and {sorted(density)}")
        density = {name: _check_density(d) for name, d in density.items()}
    else:
        density = _check_density(density)
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"steps {steps!r} must be a whole number of at least 1: 1 prunes in one shot, "
                         f"SynFlow uses 100")
    mask = Mask.ones_like(model) if mask is None else _check_mask(model, mask)
    groups = [list(mask)] if scope == "global" else [[name] for name in mask]
    sizes = [sum(mask.size(n) for n in group) for group in groups]
    schedules = []
    for group, size in zip(groups, sizes):
        alive, target = sum(mask.alive(n) for n in group), density[group[0]] if per_layer else density
        if _keep_count(target, size) > alive:
            where = "the mask" if scope == "global" else group[0]
            raise ValueError(f"{where} keeps {alive} of {size} weights already, fewer than density {target} "
                             f"asks for: give a density of at most {alive / size}")
        schedules.append(_schedule(alive / size, target, steps))
    for step in range(steps):
        scores = _check_scores(scores_fn(model, mask=mask), mask)
        if invert:
            scores = {name: -s for name, s in scores.items()}
        kept = {}
        for group, size, schedule in zip(groups, sizes, schedules):
            kept.update(_keep_highest(scores, mask, group, _keep_count(schedule[step], size)))
        mask = Mask(kept)
    return mask


SCORES: dict[str, Callable[..., Scores]] = {
    "magnitude": magnitude_scores, "snip": snip_scores, "grasp": grasp_scores, "synflow": synflow_scores,
}
STEPS = {"synflow": 100}  # Tanaka et al.'s iterative schedule; the others prune in one shot


class LayerCollapse(ValueError):
    """A mask left some layer with no weight: nothing the layer receives reaches the output."""

    def __init__(self, layers: list[str]):
        self.layers = layers
        super().__init__(
            f"layer collapse: {', '.join(layers)} kept no weight, so the network's output no longer "
            f"depends on its input; lower the sparsity, prune layer-wise (scope='layerwise'), or use "
            f"SynFlow with many steps (synflow_scores, steps=100), which is built to avoid collapse")


def collapsed_layers(mask: Mask) -> list[str]:
    """Names of the layers with no weight left, in the mask's order."""
    return [name for name in mask if mask.alive(name) == 0]


def check_no_collapse(mask: Mask) -> None:
    """Raise ``LayerCollapse`` naming every layer left empty by ``mask``."""
    layers = collapsed_layers(mask)
    if layers:
        raise LayerCollapse(layers)


def _masked_weights(model: nn.Module, mask: Mask | None) -> dict[str, torch.Tensor]:
    """Detached copies of the prunable weights with ``mask`` applied."""
    params = dict(model.named_parameters())
    names = list(prunable_layers(model))
    if mask is None:
        return {name: params[name].detach().clone() for name in names}
    mask = _check_mask(model, mask)
    return {name: params[name].detach() * mask[name].to(params[name].device, params[name].dtype) for name in names}


def _leaves(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The same tensors as fresh leaves that autograd differentiates with respect to."""
    return {name: w.detach().requires_grad_() for name, w in weights.items()}


def _state(model: nn.Module, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """What ``functional_call`` runs the model with: ``weights`` for the prunable weights, the
    other parameters as they are, and copies of the buffers, so batch norm in train mode
    updates copies of its running statistics, not the model's."""
    state = {name: p.detach() for name, p in model.named_parameters()}
    state.update({name: b.clone() for name, b in model.named_buffers()})
    state.update(weights)
    return state


@contextmanager
def _mode(model: nn.Module, training: bool) -> Iterator[None]:
    """Run in train or eval mode, then give each module back the mode it had."""
    before = {module: module.training for module in model.modules()}
    model.train(training)
    try:
        yield
    finally:
        for module, was_training in before.items():
            module.training = was_training


def _check_density(density: float) -> float:
    if (not isinstance(density, (int, float)) or isinstance(density, bool) or math.isnan(density)
            or not 0.0 < density <= 1.0):
        raise ValueError(f"density {density!r} is outside (0, 1]: it is the fraction of prunable weights "
                         f"to keep, so 0.01 keeps 1% of them (99% sparsity)")
    return float(density)


def _check_mask(model: nn.Module, mask: Mask) -> Mask:
    expected = list(prunable_layers(model))
    if not isinstance(mask, Mask) or set(mask) != set(expected):
        given = list(mask) if isinstance(mask, Mapping) else type(mask).__name__
        raise ValueError(f"the mask must be a Mask over the model's prunable weights {expected}, "
                         f"got {given}: start from Mask.ones_like(model)")
    return mask


def _check_scores(scores: Mapping[str, torch.Tensor], mask: Mask) -> Scores:
    if not isinstance(scores, Mapping) or set(scores) != set(mask):
        given = sorted(scores) if isinstance(scores, Mapping) else type(scores).__name__
        raise ValueError(f"scores_fn must return {{weight name: score tensor}} for exactly the prunable "
                         f"weights {list(mask)}, got {given}")
    for name, m in mask.items():
        s = scores[name]
        if not isinstance(s, torch.Tensor) or s.shape != m.shape:
            shape = tuple(s.shape) if isinstance(s, torch.Tensor) else type(s).__name__
            raise ValueError(f"scores_fn returned a score of shape {shape} for {name}: give one score per "
                             f"weight, a tensor of the weight's shape {tuple(m.shape)}")
        if bool(torch.isnan(s).any()) and bool((torch.isnan(s.detach().cpu()) & (m.cpu() == 1)).any()):
            raise ValueError(f"scores_fn returned NaN scores for alive weights of {name}: "
                             f"no ranking can be made from them")
    return {name: scores[name] for name in mask}


def _schedule(start: float, density: float, steps: int) -> list[float]:
    """The density after each step: exponential from ``start``, ending exactly on ``density``."""
    if start == 0:
        return [density] * steps
    return [start * (density / start) ** (k / steps) for k in range(1, steps)] + [density]


def _keep_count(density: float, size: int) -> int:
    """``round(density * size)``, halves up, as ``masks.count_to_prune`` rounds."""
    return math.floor(density * size + 0.5)


def _keep_highest(scores: Scores, mask: Mask, names: list[str], keep: int) -> dict[str, torch.Tensor]:
    """New masks for ``names``, ranked together: of their alive weights, the ``keep``
    highest-scoring stay (ties broken by position)."""
    flat_scores = torch.cat([scores[n].detach().flatten().cpu().double() for n in names])
    flat_mask = torch.cat([mask[n].flatten().cpu() for n in names])
    alive = _count(flat_mask)
    pruned = _prune_smallest(flat_scores, flat_mask, alive - min(keep, alive))
    out, start = {}, 0
    for n in names:
        size = mask[n].numel()
        out[n] = pruned[start:start + size].view_as(mask[n]).to(mask[n].device)
        start += size
    return out
