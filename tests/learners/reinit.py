"""Learners' reinit (notebook 04): the ticket's mask on fresh Gaussian Glorot weights drawn from a seed."""

import math

import torch

from learners import Suite

suite = Suite("04.reinit", context=lambda get: {})


def _mask_(model, mask):
    with torch.no_grad():
        for name, m in mask.items():
            model.get_parameter(name).mul_(m)
    return model


# --- wrong -------------------------------------------------------------------------------------------


@suite.wrong(r"fc1\.weight: the survivors still hold their original initial values")
def keeps_the_initial_weights(model, mask, seed):
    return _mask_(model, mask)


@suite.wrong(r"fc3\.weight: the survivors still hold their original initial values")
def forgets_the_output_layer(model, mask, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name in ("fc1.weight", "fc2.weight"):
            torch.nn.init.xavier_normal_(model.get_parameter(name), generator=g)
    return _mask_(model, mask)


@suite.wrong(r"re-seeded the generator for each layer")
def reseeds_for_every_layer(model, mask, seed):
    with torch.no_grad():
        for name, m in mask.items():
            g = torch.Generator().manual_seed(seed)
            torch.nn.init.xavier_normal_(model.get_parameter(name), generator=g)
    return _mask_(model, mask)


@suite.wrong(r"re-seeded the generator for each layer")
def manual_seed_inside_the_loop(model, mask, seed):
    with torch.no_grad():
        for name in mask:
            torch.manual_seed(seed)
            weight = model.get_parameter(name)
            fan_out, fan_in = weight.shape
            weight.copy_(torch.randn(weight.shape) * math.sqrt(2 / (fan_in + fan_out)))
    return _mask_(model, mask)


@suite.wrong(r"PyTorch's default, reset_parameters")
def pytorch_default_init(model, mask, seed):
    torch.manual_seed(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            module.reset_parameters()
    return _mask_(model, mask)


@suite.wrong(r"Kaiming/He's, kaiming_normal_")
def kaiming_normal(model, mask, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name in mask:
            torch.nn.init.kaiming_normal_(model.get_parameter(name), generator=g)
    return _mask_(model, mask)


@suite.wrong(r"look uniform.*not xavier_uniform_")
def glorot_uniform(model, mask, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name in mask:
            torch.nn.init.xavier_uniform_(model.get_parameter(name), generator=g)
    return _mask_(model, mask)


@suite.wrong(r"N\(0, 1\): normal_ without std")
def normal_without_std(model, mask, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name in mask:
            torch.nn.init.normal_(model.get_parameter(name), generator=g)
    return _mask_(model, mask)


@suite.wrong(r"with a ReLU gain")
def glorot_with_relu_gain(model, mask, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name in mask:
            torch.nn.init.xavier_normal_(model.get_parameter(name), gain=torch.nn.init.calculate_gain("relu"),
                                         generator=g)
    return _mask_(model, mask)


@suite.wrong(r"fc1\.weight: pruned weights are not zero")
def forgets_the_mask(model, mask, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name in mask:
            torch.nn.init.xavier_normal_(model.get_parameter(name), generator=g)
    return model


@suite.wrong(r"pruned weights are not zero: multiply the fresh weights by the mask, after")
def masks_before_drawing(model, mask, seed):
    _mask_(model, mask)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name in mask:
            torch.nn.init.xavier_normal_(model.get_parameter(name), generator=g)
    return model


@suite.wrong(r"same seed gave different weights")
def ignores_the_seed_for_the_global_rng(model, mask, seed):
    with torch.no_grad():
        for name in mask:
            torch.nn.init.xavier_normal_(model.get_parameter(name))
    return _mask_(model, mask)


@suite.wrong(r"seeds 1234 and 99 gave the same weights")
def unseeded_generator(model, mask, seed):
    g = torch.Generator()  # always starts from the same default seed
    with torch.no_grad():
        for name in mask:
            torch.nn.init.xavier_normal_(model.get_parameter(name), generator=g)
    return _mask_(model, mask)


@suite.wrong(r"biases are not zero")
def resets_every_parameter(model, mask, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name in mask:
                torch.nn.init.xavier_normal_(p, generator=g)
            else:
                p.normal_(0, 0.01, generator=g)
    return _mask_(model, mask)


@suite.wrong(r"changed the mask you were given in place")
def masks_the_mask(model, mask, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, m in mask.items():
            weight = model.get_parameter(name)
            torch.nn.init.xavier_normal_(weight, generator=g)
            pruned = m.sub_(1).abs_()  # 1 where pruned, computed in place
            weight.masked_fill_(pruned.bool(), 0.0)
    return model


@suite.wrong(r"return the model, not NoneType")
def returns_nothing(model, mask, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, m in mask.items():
            torch.nn.init.xavier_normal_(model.get_parameter(name), generator=g)
    _mask_(model, mask)


# --- right -------------------------------------------------------------------------------------------


@suite.right
def with_global_manual_seed(model, mask, seed):
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, m in mask.items():
            torch.nn.init.xavier_normal_(model.get_parameter(name))
    return _mask_(model, mask)


@suite.right
def survivors_only_with_randn(model, mask, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, m in mask.items():
            weight = model.get_parameter(name)
            fan_out, fan_in = weight.shape
            fresh = torch.zeros_like(weight)
            keep = m.bool()
            fresh[keep] = torch.randn(int(keep.sum()), generator=g) * math.sqrt(2.0 / (fan_in + fan_out))
            weight.copy_(fresh)
    return model


@suite.right
def one_seed_per_layer_offset(model, mask, seed):
    with torch.no_grad():
        for i, (name, m) in enumerate(mask.items()):
            g = torch.Generator().manual_seed(seed * 1000 + i)
            weight = model.get_parameter(name)
            torch.nn.init.xavier_normal_(weight, generator=g)
            weight.masked_fill_(m == 0, 0.0)
    return model


@suite.right
def with_lthkit_init_weights(model, mask, seed):
    from lthkit.models import init_weights

    init_weights(model, seed)
    return _mask_(model, mask)


@suite.right
def in_float64_then_copied(model, mask, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, m in mask.items():
            weight = model.get_parameter(name)
            fresh = torch.empty(weight.shape, dtype=torch.float64)
            torch.nn.init.xavier_normal_(fresh, generator=g)
            weight.copy_((fresh * m.double()).float())
    return model
