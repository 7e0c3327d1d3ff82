"""Learners' SNIP scores (notebook 07): snip_score(model, images, labels, mask) -> {weight name: |g * w|}."""

import copy

import torch
import torch.nn.functional as F

from learners import Suite

suite = Suite("07.snip-score", context=lambda get: {"data": get("mnist_small")})


def _masked(model, mask):
    """Masked copies of the prunable weights, leaves that require grad, and every parameter to run with."""
    weights = {n: (model.get_parameter(n).detach() * m).requires_grad_() for n, m in mask.items()}
    return weights, {**{n: p.detach() for n, p in model.named_parameters()}, **weights}


def _scores(model, images, labels, mask, loss=F.cross_entropy):
    """g and w for a loss of the model's output, the mask applied to copies."""
    weights, params = _masked(model, mask)
    out = torch.func.functional_call(model, params, (images,))
    grads = torch.autograd.grad(loss(out, labels), list(weights.values()))
    return dict(zip(weights, grads)), weights


# --- wrong -------------------------------------------------------------------------------------------


@suite.wrong(r"with their signs")
def without_abs(model, images, labels, mask):
    g, w = _scores(model, images, labels, mask)
    return {n: (g[n] * w[n]).detach() for n in mask}


@suite.wrong(r"\|g\| alone")
def gradient_only(model, images, labels, mask):
    g, _ = _scores(model, images, labels, mask)
    return {n: g[n].abs() for n in mask}


@suite.wrong(r"magnitude pruning at initialisation")
def weight_only(model, images, labels, mask):
    return {n: (model.get_parameter(n) * m).abs().detach() for n, m in mask.items()}


@suite.wrong(r"forward pass used the pruned weights")
def mask_after_the_gradient(model, images, labels, mask):
    model.zero_grad()
    F.cross_entropy(model(images), labels).backward()
    scores = {n: (model.get_parameter(n).grad * model.get_parameter(n) * mask[n]).abs().detach() for n in mask}
    model.zero_grad()
    return scores


@suite.wrong(r"weights changed")
def masks_the_model_in_place(model, images, labels, mask):
    with torch.no_grad():
        for n, m in mask.items():
            model.get_parameter(n).mul_(m)
    model.zero_grad()
    F.cross_entropy(model(images), labels).backward()
    return {n: (model.get_parameter(n).grad * model.get_parameter(n)).abs().detach() for n in mask}


@suite.wrong(r"torch\.nn\.utils\.prune")
def prunes_the_model_itself(model, images, labels, mask):
    for n, m in mask.items():
        torch.nn.utils.prune.custom_from_mask(model.get_submodule(n.rsplit(".", 1)[0]), "weight", m)
    F.cross_entropy(model(images), labels).backward()
    return {n: (model.get_parameter(n.replace("weight", "weight_orig")).grad
                * model.get_parameter(n.replace("weight", "weight_orig"))).abs().detach() for n in mask}


@suite.wrong(r"changed the mask you were given")
def masks_in_place_on_the_given_mask(model, images, labels, mask):
    for n, m in mask.items():
        m.mul_(model.get_parameter(n).detach())
    weights = {n: m.clone().requires_grad_() for n, m in mask.items()}
    params = {**{n: p.detach() for n, p in model.named_parameters()}, **weights}
    loss = F.cross_entropy(torch.func.functional_call(model, params, (images,)), labels)
    grads = torch.autograd.grad(loss, list(weights.values()))
    return {n: (g * w).abs().detach() for (n, w), g in zip(weights.items(), grads)}


@suite.wrong(r"one image \(the first\)")
def first_image_only(model, images, labels, mask):
    g, w = _scores(model, images[:1], labels[:1], mask)
    return {n: (g[n] * w[n]).abs().detach() for n in mask}


@suite.wrong(r"first 32 images only")
def one_minibatch_of_32(model, images, labels, mask):
    g, w = _scores(model, images[:32], labels[:32], mask)
    return {n: (g[n] * w[n]).abs().detach() for n in mask}


@suite.wrong(r"one image \(the last\)")
def loop_keeps_the_last_image(model, images, labels, mask):
    for i in range(len(images)):
        g, w = _scores(model, images[i:i + 1], labels[i:i + 1], mask)
        scores = {n: (g[n] * w[n]).abs().detach() for n in mask}
    return scores


@suite.wrong(r"one image \(image 37\)")
def one_image_from_the_middle(model, images, labels, mask):
    x, y = images[37].unsqueeze(0), labels[37].view(1)
    g, w = _scores(model, x, y, mask)
    return {n: (g[n] * w[n]).abs().detach() for n in mask}


@suite.wrong(r"image by image")
def sums_each_images_scores(model, images, labels, mask):
    total = {n: torch.zeros_like(m) for n, m in mask.items()}
    for x, y in zip(images, labels):
        g, w = _scores(model, x.unsqueeze(0), y.unsqueeze(0), mask)
        for n in mask:
            total[n] += (g[n] * w[n]).abs().detach()
    return total


@suite.wrong(r"layer by layer")
def normalised_per_layer(model, images, labels, mask):
    g, w = _scores(model, images, labels, mask)
    scores = {n: (g[n] * w[n]).abs().detach() for n in mask}
    return {n: s / s.sum() for n, s in scores.items()}


@suite.wrong(r"layer by layer")
def scaled_to_each_layers_max(model, images, labels, mask):
    g, w = _scores(model, images, labels, mask)
    out = {}
    for n in mask:
        s = (g[n] * w[n]).abs().detach()
        out[n] = s / s.max()
    return out


@suite.wrong(r"nll_loss of the model's raw output")
def nll_loss_on_logits(model, images, labels, mask):
    g, w = _scores(model, images, labels, mask, loss=F.nll_loss)
    return {n: (g[n] * w[n]).abs().detach() for n in mask}


@suite.wrong(r"nll_loss of softmax")
def nll_loss_on_probabilities(model, images, labels, mask):
    g, w = _scores(model, images, labels, mask, loss=lambda out, y: F.nll_loss(out.softmax(dim=1), y))
    return {n: (g[n] * w[n]).abs().detach() for n in mask}


@suite.wrong(r"mean squared error \(F\.mse_loss")
def mse_against_one_hot(model, images, labels, mask):
    def mse(out, y):
        return F.mse_loss(out, F.one_hot(y, 10).float())

    g, w = _scores(model, images, labels, mask, loss=mse)
    return {n: (g[n] * w[n]).abs().detach() for n in mask}


@suite.wrong(r"mean squared error of the softmax")
def mse_of_probabilities(model, images, labels, mask):
    def mse(out, y):
        return ((torch.softmax(out, 1) - F.one_hot(y, 10)) ** 2).sum()

    g, w = _scores(model, images, labels, mask, loss=mse)
    return {n: (g[n] * w[n]).abs().detach() for n in mask}


@suite.wrong(r"softmax before F\.cross_entropy")
def softmax_then_cross_entropy(model, images, labels, mask):
    g, w = _scores(model, images, labels, mask, loss=lambda out, y: F.cross_entropy(F.softmax(out, dim=1), y))
    return {n: (g[n] * w[n]).abs().detach() for n in mask}


@suite.wrong(r"own predictions")
def predicted_labels(model, images, labels, mask):
    with torch.no_grad():
        guess = model(images).argmax(1)
    g, w = _scores(model, images, guess, mask)
    return {n: (g[n] * w[n]).abs().detach() for n in mask}


@suite.wrong(r"you squared g \* w")
def squared(model, images, labels, mask):
    g, w = _scores(model, images, labels, mask)
    return {n: ((g[n] * w[n]) ** 2).detach() for n in mask}


@suite.wrong(r"pruned weights must score 0")
def multiplies_by_the_unmasked_weight(model, images, labels, mask):
    g, _ = _scores(model, images, labels, mask)
    return {n: (g[n] * model.get_parameter(n)).abs().detach() for n in mask}


@suite.wrong(r"biases are not pruned")
def scores_every_parameter(model, images, labels, mask):
    params = {n: p.detach().clone().requires_grad_() for n, p in model.named_parameters()}
    loss = F.cross_entropy(torch.func.functional_call(model, params, (images,)), labels)
    grads = torch.autograd.grad(loss, list(params.values()))
    return {n: (g * p).abs().detach() for (n, p), g in zip(params.items(), grads)}


@suite.wrong(r"one per weight")
def flattened(model, images, labels, mask):
    g, w = _scores(model, images, labels, mask)
    return {n: (g[n] * w[n]).abs().detach().flatten() for n in mask}


@suite.wrong(r"returned None")
def forgets_to_return(model, images, labels, mask):
    g, w = _scores(model, images, labels, mask)
    scores = {n: (g[n] * w[n]).abs().detach() for n in mask}  # noqa: F841


# --- right -------------------------------------------------------------------------------------------


@suite.right
def deep_copy_and_summed_loss(model, images, labels, mask):
    net = copy.deepcopy(model)
    with torch.no_grad():
        for n, m in mask.items():
            net.get_parameter(n).mul_(m)
    F.cross_entropy(net(images), labels, reduction="sum").backward()
    return {n: (net.get_parameter(n).grad * net.get_parameter(n)).abs().detach() for n in mask}


@suite.right
def log_softmax_and_nll_loss(model, images, labels, mask):
    g, w = _scores(model, images, labels, mask, loss=lambda out, y: F.nll_loss(F.log_softmax(out, dim=1), y))
    return {n: (g[n] * w[n]).abs().detach() for n in mask}


@suite.right
def without_detach(model, images, labels, mask):
    g, w = _scores(model, images, labels, mask)
    return {n: (g[n] * w[n]).abs() for n in mask}


@suite.right
def prune_utilities_on_a_copy(model, images, labels, mask):
    net = copy.deepcopy(model)
    for n, m in mask.items():
        torch.nn.utils.prune.custom_from_mask(net.get_submodule(n.rsplit(".", 1)[0]), "weight", m)
    F.cross_entropy(net(images), labels).backward()
    scores = {}
    for n in mask:
        orig = net.get_parameter(n.replace("weight", "weight_orig"))
        scores[n] = (orig.grad * orig * mask[n]).abs().detach()
    return scores


@suite.right
def normalised_by_the_total(model, images, labels, mask):
    g, w = _scores(model, images, labels, mask)
    scores = {n: (g[n] * w[n]).abs().detach() for n in mask}
    total = sum(s.sum() for s in scores.values())
    return {n: s / total for n, s in scores.items()}


@suite.right
def in_double_precision(model, images, labels, mask):
    net = copy.deepcopy(model).double()
    weights = {n: (net.get_parameter(n).detach() * m.double()).requires_grad_() for n, m in mask.items()}
    params = {**{n: p.detach() for n, p in net.named_parameters()}, **weights}
    loss = F.cross_entropy(torch.func.functional_call(net, params, (images.double(),)), labels)
    grads = torch.autograd.grad(loss, list(weights.values()))
    return {n: (g * w).abs().detach() for (n, w), g in zip(weights.items(), grads)}


@suite.right
def mask_in_place_then_restore(model, images, labels, mask):
    saved = {n: model.get_parameter(n).detach().clone() for n in mask}
    with torch.no_grad():
        for n, m in mask.items():
            model.get_parameter(n).mul_(m)
    grads = torch.autograd.grad(F.cross_entropy(model(images), labels), [model.get_parameter(n) for n in mask])
    scores = {n: (g * model.get_parameter(n)).abs().detach() for n, g in zip(mask, grads)}
    with torch.no_grad():
        for n in mask:
            model.get_parameter(n).copy_(saved[n])
    return scores


@suite.right
def product_of_magnitudes(model, images, labels, mask):
    g, w = _scores(model, images, labels, mask)
    return {n: g[n].abs() * w[n].detach().abs() for n in mask}
