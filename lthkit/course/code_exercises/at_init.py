"""Notebook 07's code exercises: SNIP's score, by hand.

A wrong score is named by recomputing each classic mistaken score here (another loss, one image, the
unmasked network, ...) and saying which one the learner's scores are proportional to.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from lthkit.course.code_exercises.common import Mistake, _judge, _run, _same, _state
from lthkit.course.verdicts import Verdict, exercise
from lthkit.masks import Mask, prune_by_magnitude
from lthkit.models import build_model
from lthkit.prune_at_init import snip_scores
from lthkit.seeds import generator


def snip_score_reference(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, mask) -> dict:
    """lthkit's SNIP with the notebook's signature (``mask`` a plain dict there, a ``Mask`` in IMP)."""
    return snip_scores(model, images, labels, mask=mask if isinstance(mask, Mask) else Mask(mask))


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


def _grads(model: nn.Module, mask: Mask | None, images, labels,
           loss: Callable = F.cross_entropy) -> dict[str, torch.Tensor]:
    """The gradient of ``loss(output, labels)`` at each prunable weight, the mask applied or not."""
    from torch.func import functional_call

    weights = {n: p.detach().clone() for n, p in model.named_parameters()}
    for n, m in (mask or {}).items():
        weights[n] = weights[n] * m
    names = list(Mask.ones_like(model))
    leaves = {n: weights[n].requires_grad_() for n in names}
    value = loss(functional_call(model, weights, (images,)), labels)
    return dict(zip(names, torch.autograd.grad(value, list(leaves.values()))))


def _masked_output(model: nn.Module, mask: Mask, images) -> torch.Tensor:
    """The output of the network with the mask applied."""
    from torch.func import functional_call

    weights = {n: p.detach() for n, p in model.named_parameters()}
    return functional_call(model, {**weights, **{n: weights[n] * m for n, m in mask.items()}}, (images,))


def _one_hot(output: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.one_hot(labels, output.shape[1]).to(output.dtype)


# Losses learners take instead of the cross-entropy of the raw output, each with what to say.
WRONG_LOSSES: dict[str, tuple[Callable, str]] = {
    "nll_loss": (lambda z, y: F.nll_loss(z, y),
                 "you took F.nll_loss of the model's raw output: nll_loss expects log-probabilities, so on logits it "
                 "is not the cross-entropy; use F.cross_entropy(output, labels) (or F.nll_loss(F.log_softmax(output, "
                 "1), labels))"),
    "nll_loss of softmax": (lambda z, y: F.nll_loss(F.softmax(z, 1), y),
                            "you took F.nll_loss of softmax probabilities: nll_loss expects their log; use "
                            "F.cross_entropy(output, labels) on the raw output"),
    "softmax first": (lambda z, y: F.cross_entropy(F.softmax(z, 1), y),
                      "you applied softmax before F.cross_entropy, which applies log_softmax itself: give it the "
                      "model's raw output"),
    "mse": (lambda z, y: F.mse_loss(z, _one_hot(z, y)),
            "those are gradients of a mean squared error (F.mse_loss against one-hot labels): SNIP's loss is the "
            "training loss, the cross-entropy F.cross_entropy(output, labels)"),
    "mse of softmax": (lambda z, y: F.mse_loss(F.softmax(z, 1), _one_hot(z, y)),
                       "those are gradients of a mean squared error of the softmax against one-hot labels: SNIP's "
                       "loss is the training loss, the cross-entropy F.cross_entropy(output, labels)"),
}


def _model_changed(model: nn.Module, before: dict) -> str | None:
    """What the learner's function did to the model, if anything: a score only reads it."""
    after = _state(model)
    if set(after) != set(before):
        return ("your function changed the model's parameters (torch.nn.utils.prune or a parametrization adds "
                f"{sorted(set(after) - set(before))[:2]}): a score only reads the model; apply the mask to "
                "copies of the weights (weight * mask), or prune a copy.deepcopy(model)")
    if not _same(after, before):
        return ("the model's weights changed: a score only reads them. Apply the mask to copies "
                "(weight * mask) in the forward pass, not to the model in place")
    return None


def _image_by_image(model: nn.Module, mask: Mask, images, labels, weights: dict,
                    matches: Callable[[torch.Tensor], bool]) -> str | None:
    """The mistakes of a loop over the images: the scores of one image alone (which one), or the sum of each
    image's own |g * w|."""
    names = list(mask)
    total = torch.zeros(sum(weights[n].numel() for n in names), dtype=torch.float64)
    for i in range(len(images)):
        grads = _grads(model, mask, images[i:i + 1], labels[i:i + 1])
        score = torch.cat([(grads[n].double() * weights[n]).abs().flatten() for n in names])
        if matches(score):
            which = "the first" if i == 0 else "the last" if i == len(images) - 1 else f"image {i}"
            return (f"your scores come from one image ({which}): SNIP's g is the gradient of the mean cross-entropy "
                    "over the whole batch of images given")
        total += score
    if matches(total):
        return ("you took |g * w| image by image and added them up: SNIP takes the gradient of the batch's mean "
                "loss first, then |g * w| once; the signs of different images cancel")
    return None


def _diagnose(model: nn.Module, mask: Mask, images, labels, mine: dict, truth: dict) -> str:
    """Name the mistake whose score ``mine`` is proportional to (on the weights still alive)."""
    names = list(mask)

    def flat(d):
        return torch.cat([d[n].flatten() for n in names])

    whole, right = flat(mine), flat(truth)
    alive = flat(mask).bool()
    if not bool(torch.isfinite(whole).all()):
        return "some of your scores are NaN or infinite: every score |g * w| is a finite number"
    if bool((whole[alive] == 0).all()):
        return ("every score of an alive weight is 0: multiply the gradient by the masked weight, (g * w).abs(), "
                "with g from torch.autograd.grad of the loss with respect to those masked weights")
    if _proportional(whole[alive], right[alive]):
        return ("pruned weights must score 0 (their weight is 0 under the mask): multiply by the masked weights, "
                "not the model's")

    def matches(score) -> bool:
        return _proportional(whole[alive], score[alive])

    weights = {n: model.get_parameter(n).detach().double() * mask[n] for n in names}
    grads = {n: g.double() for n, g in _grads(model, mask, images, labels).items()}
    signed = flat({n: grads[n] * weights[n] for n in names})
    if matches(signed) or matches(-signed):
        return ("your scores are g * w with their signs: SNIP ranks by |g * w|, how much the loss would change "
                "either way. Without .abs() the weights whose removal lowers the loss most rank lowest and are "
                "pruned first")
    if matches(signed ** 2):
        return ("you squared g * w: it ranks the weights alike, but SNIP's score is |g * w| itself; take "
                "(g * w).abs(), not (g * w) ** 2")
    if matches(flat(grads).abs()):
        return ("you scored by |g| alone: SNIP multiplies by the weight, since removing w changes the loss by about "
                "g * w (a gate on each weight, set from 1 to 0)")
    if matches(flat(weights).abs()):
        return "that is |w|, magnitude pruning at initialisation, not SNIP: multiply by the gradient of the loss"
    unmasked = _grads(model, None, images, labels)
    full = {n: model.get_parameter(n).detach().double() for n in names}
    if matches(flat({n: unmasked[n].double() * full[n] for n in names}).abs()):
        return ("your forward pass used the pruned weights: with the mask applied (weights * mask) the gradients "
                "are those of the network that will actually train")
    if all(_proportional(mine[n][mask[n].bool()], truth[n][mask[n].bool()]) for n in names):
        return ("each layer's scores are right only up to a scale of their own (normalised layer by layer, such as "
                "divided by the layer's sum or maximum): SNIP ranks the weights of all layers together, so scale "
                "them all by one number, or not at all")
    for name, (loss, said) in WRONG_LOSSES.items():
        g = _grads(model, mask, images, labels, loss)
        if matches(flat({n: g[n].double() * weights[n] for n in names}).abs()):
            return said
    with torch.no_grad():
        guesses = model(images).argmax(1), _masked_output(model, mask, images).argmax(1)
    for guess in guesses:
        g = _grads(model, mask, images, guess)
        if matches(flat({n: g[n].double() * weights[n] for n in names}).abs()):
            return ("you used the model's own predictions (output.argmax) as the labels: take the cross-entropy "
                    "against the labels given")
    for k in (10, 16, 32, 50, 64):
        if k < len(images):
            g = _grads(model, mask, images[:k], labels[:k])
            if matches(flat({n: g[n].double() * weights[n] for n in names}).abs()):
                return (f"your scores come from the first {k} images only: SNIP's g is the gradient of the mean "
                        "cross-entropy over the whole batch of images given")
    said = _image_by_image(model, mask, images, labels, weights, matches)
    if said:
        return said
    k = max(1, int(alive.sum()) // 20)
    top_right = set(right[alive].topk(k).indices.tolist())
    overlap = len(top_right & set(whole[alive].topk(k).indices.tolist())) / k
    return (f"your scores rank the weights differently from |g * w| (of the 5% of weights that score highest by "
            f"|g * w|, yours put {overlap:.0%} among their top 5%): g is the gradient of F.cross_entropy(output, "
            "labels) over all the images given, with respect to each masked weight w = weight * mask "
            "(torch.autograd.grad)")


@exercise("07.snip-score", reference=snip_score_reference)
def _snip_score_exercise(fn, *, data=None) -> Verdict:
    def cases() -> str:
        model, mask, images, labels = _snip_setup(data)
        before = _state(model)
        given = images.clone(), labels.clone(), {n: m.clone() for n, m in mask.items()}
        out = _run(fn, model, *given)
        changed = _model_changed(model, before)
        if changed:
            raise Mistake(changed)
        for what, mine, theirs in (("images", given[0], images), ("labels", given[1], labels)):
            if not torch.equal(mine, theirs):
                raise Mistake(f"you changed the {what} you were given in place: a score only reads them")
        if not all(torch.equal(given[2][n], m) for n, m in mask.items()):
            raise Mistake("you changed the mask you were given in place: multiply copies, weight * mask, and leave "
                          "the mask as it is")
        if out is None:
            raise Mistake("your function returned None: return the dict {weight name: scores}")
        if not isinstance(out, Mapping) or set(out) != set(mask):
            got = sorted(map(str, out)) if isinstance(out, Mapping) else type(out).__name__
            raise Mistake(f"return {{weight name: scores}} for exactly the prunable weights {list(mask)} (biases are "
                          f"not pruned), not {got}")
        for n, m in mask.items():
            if not isinstance(out[n], torch.Tensor) or out[n].shape != m.shape:
                raise Mistake(f"the scores of {n} must be one per weight, a tensor of shape {tuple(m.shape)}")
            if not out[n].is_floating_point():
                raise Mistake(f"the scores of {n} must be real numbers, |g * w| as floats, not {out[n].dtype}")
        mine = {n: out[n].detach().cpu().double() for n in mask}
        truth = {n: s.double() for n, s in snip_scores(model, images, labels, mask=mask).items()}
        whole = torch.cat([mine[n].flatten() for n in mask])
        right = torch.cat([truth[n].flatten() for n in mask])
        if _proportional(whole, right):
            return ("is |g * w| with the mask applied, on every layer of a LeNet-300-100 "
                    "(the ranking SNIP prunes by).")
        raise Mistake(_diagnose(model, mask, images, labels, mine, truth))
    return _judge("snip_score", cases)
