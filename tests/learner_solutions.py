"""Correct learner solutions to the code exercises, written as a learner would (plain PyTorch, not
lthkit's functions): the checkers must accept them, and run_imp must reproduce lthkit's run with them."""

import math

import torch


def prune_argsort(weights, mask, rate):
    alive = mask.flatten().nonzero().flatten()
    count = math.floor(rate * len(alive) + 0.5)
    smallest = alive[torch.argsort(weights.abs().flatten()[alive], stable=True)[:count]]
    new = mask.clone().flatten()
    new[smallest] = 0
    return new.view_as(mask)


def rewind_right(model, initial, mask):
    model.load_state_dict(initial)
    with torch.no_grad():
        for name, m in mask.items():
            model.get_parameter(name).mul_(m)
    return model


def reinit_right(model, mask, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, m in mask.items():
            weight = model.get_parameter(name)
            torch.nn.init.xavier_normal_(weight, generator=g)
            weight.mul_(m)
    return model


def random_right(mask, generator):
    out = {}
    for name, m in mask.items():
        flat = torch.zeros(m.numel(), dtype=m.dtype)
        flat[torch.randperm(m.numel(), generator=generator)[: int(m.sum())]] = 1
        out[name] = flat.view_as(m)
    return out


def snip_right(model, images, labels, mask):
    """SNIP's |g * w| as a learner writes it: masked copies of the weights, torch.autograd.grad."""
    weights = {name: model.get_parameter(name).detach() * m for name, m in mask.items()}
    for w in weights.values():
        w.requires_grad_()
    params = {**{n: p.detach() for n, p in model.named_parameters()}, **weights}
    logits = torch.func.functional_call(model, params, (images,))
    loss = torch.nn.functional.cross_entropy(logits, labels)
    grads = torch.autograd.grad(loss, list(weights.values()))
    return {name: (g * w).abs().detach() for (name, w), g in zip(weights.items(), grads)}


def top_k_right(scores, density):
    """Edge-popup's mask as notebook 08's solution writes it."""
    a = scores.abs()
    flat = a.detach().reshape(-1)
    hard = torch.zeros_like(flat).scatter_(0, flat.topk(round(density * flat.numel())).indices, 1.0)
    return hard.reshape(a.shape) + (a - a.detach())


def keep_signs_right(initial, fresh):
    return fresh.abs() * initial.sign()


def to_bitmask_right(weight, mask):
    import numpy as np

    keep = mask.bool()
    return torch.from_numpy(np.packbits(keep.flatten().numpy())), weight[keep].float()


def masked_step_right(model, mask, optimizer, loss):
    optimizer.zero_grad()
    loss.backward()
    for name, m in mask.items():
        model.get_parameter(name).grad.mul_(m)
    optimizer.step()
    with torch.no_grad():
        for name, m in mask.items():
            model.get_parameter(name).mul_(m)


def layer_rates_right(model, kind_rates):
    kinds = {f"{name}.weight": "conv" if isinstance(module, torch.nn.Conv2d) else "fc"
             for name, module in model.named_modules() if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear))}
    kinds[[n for n, k in kinds.items() if k == "fc"][-1]] = "output"
    return {n: kind_rates[k] for n, k in kinds.items()}


def interpolate_right(a, b, alpha):
    return {k: (1 - alpha) * a[k] + alpha * b[k] if a[k].is_floating_point() else a[k] for k in a}
