"""06.interpolate: the state dict at a point of the line between two networks, as learners write it."""

import torch

from learners import Suite

suite = Suite("06.interpolate")


@suite.right
def with_lerp_and_integers_from_a(a, b, alpha):
    return {k: torch.lerp(a[k], b[k], alpha) if a[k].is_floating_point() else a[k].clone() for k in a}


@suite.right
def by_the_formula(a, b, alpha):
    out = {}
    for name in a:
        if a[name].dtype.is_floating_point:
            out[name] = (1 - alpha) * a[name] + alpha * b[name]
        else:
            out[name] = a[name]
    return out


@suite.right
def integers_rounded_along_the_line(a, b, alpha):
    from collections import OrderedDict

    out = OrderedDict()
    for name, x in a.items():
        y = b[name]
        if torch.is_floating_point(x):
            out[name] = x + alpha * (y - x)
        else:
            out[name] = torch.round((1 - alpha) * x.double() + alpha * y.double()).to(x.dtype)
    return out


@suite.right
def integers_from_b(a, b, alpha):
    return {k: (a[k] * (1 - alpha) + b[k] * alpha) if a[k].is_floating_point() else b[k] for k in a}


@suite.wrong(r"batch-norm buffers are missing")
def parameters_only(a, b, alpha):
    return {k: (1 - alpha) * a[k] + alpha * b[k] for k in a if not k.endswith(("running_mean", "running_var",
                                                                               "num_batches_tracked"))}


@suite.wrong(r"integer counter")
def lerps_everything_as_float(a, b, alpha):
    return {k: torch.lerp(a[k].float(), b[k].float(), alpha) for k in a}


@suite.wrong(r"integer counter")
def formula_on_every_entry(a, b, alpha):
    return {k: (1 - alpha) * a[k] + alpha * b[k] for k in a}


@suite.wrong(r"runs from a \(alpha = 0\)")
def the_wrong_way(a, b, alpha):
    return {k: alpha * a[k] + (1 - alpha) * b[k] if a[k].is_floating_point() else a[k] for k in a}


@suite.wrong(r"returned the midpoint")
def always_the_average(a, b, alpha):
    return {k: (a[k] + b[k]) / 2 if a[k].is_floating_point() else a[k] for k in a}


@suite.wrong(r"running statistics are not interpolated")
def statistics_from_a(a, b, alpha):
    return {k: a[k] if k.endswith(("running_mean", "running_var")) or not a[k].is_floating_point()
            else torch.lerp(a[k], b[k], alpha) for k in a}


@suite.wrong(r"changed `a` or `b` in place")
def in_place_on_a(a, b, alpha):
    for k in a:
        if a[k].is_floating_point():
            a[k].mul_(1 - alpha).add_(alpha * b[k])
    return a


@suite.wrong(r"return a state dict")
def loads_into_a_model(a, b, alpha):
    from lthkit.models import build_model

    model = build_model("resnet20", (3, 32, 32))
    model.load_state_dict({k: torch.lerp(a[k], b[k], alpha) if a[k].is_floating_point() else a[k] for k in a})
    return model


@suite.wrong(r"dtype torch.float64")
def in_double_precision(a, b, alpha):
    return {k: torch.lerp(a[k].double(), b[k].double(), alpha) if a[k].is_floating_point() else a[k] for k in a}


@suite.wrong(r"not \(1 - alpha\) \* a \+ alpha \* b")
def forgets_one_minus(a, b, alpha):
    return {k: a[k] + alpha * b[k] if a[k].is_floating_point() else a[k] for k in a}


@suite.wrong(r"return a state dict")
def returns_a_list(a, b, alpha):
    return [torch.lerp(a[k], b[k], alpha) for k in a if a[k].is_floating_point()]


@suite.wrong(r"running_var is a variance")
def interpolates_the_standard_deviation(a, b, alpha):
    out = {}
    for k in a:
        if k.endswith("running_var"):
            out[k] = torch.lerp(a[k].sqrt(), b[k].sqrt(), alpha) ** 2
        elif a[k].is_floating_point():
            out[k] = torch.lerp(a[k], b[k], alpha)
        else:
            out[k] = a[k]
    return out
