"""05.layer-rates: per-layer pruning rates of a conv net from rates per kind, as learners write it."""

from torch import nn

from learners import Suite

suite = Suite("05.layer-rates")


def _kinds(model):
    kinds = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            kinds[name + ".weight"] = "conv"
        elif isinstance(module, nn.Linear):
            kinds[name + ".weight"] = "fc"
    return kinds


@suite.right
def by_module_type(model, kind_rates):
    kinds = _kinds(model)
    last = [n for n, k in kinds.items() if k == "fc"][-1]
    kinds[last] = "output"
    return {n: kind_rates[k] for n, k in kinds.items()}


@suite.right
def by_weight_dimension(model, kind_rates):
    """4-D weights are convolutions', 2-D ones linear layers'; batch norm's are 1-D."""
    names = [n for n, p in model.named_parameters() if n.endswith("weight") and p.dim() in (2, 4)]
    rates = {n: kind_rates["conv"] if model.get_parameter(n).dim() == 4 else kind_rates["fc"] for n in names}
    rates[[n for n in names if model.get_parameter(n).dim() == 2][-1]] = kind_rates["output"]
    return rates


@suite.right
def by_class_name_walking_backwards(model, kind_rates):
    rates, seen_linear = {}, False
    for name, module in reversed(list(model.named_modules())):
        kind = type(module).__name__
        if kind == "Linear":
            rates[f"{name}.weight"] = kind_rates["fc" if seen_linear else "output"]
            seen_linear = True
        elif kind == "Conv2d":
            rates[f"{name}.weight"] = kind_rates["conv"]
    return dict(reversed(list(rates.items())))


@suite.right
def with_lthkit_kinds(model, kind_rates):
    from lthkit.models import prunable_layers

    return {name: float(kind_rates[kind]) for name, kind in prunable_layers(model).items()}


@suite.wrong(r"only weights are pruned, never biases")
def biases_too(model, kind_rates):
    rates = by_module_type(model, kind_rates)
    return {**rates, **{n.replace("weight", "bias"): r for n, r in rates.items()
                        if n.replace("weight", "bias") in dict(model.named_parameters())}}


@suite.wrong(r"last linear layer .* is the output layer")
def no_output_layer(model, kind_rates):
    return {n: kind_rates[k] for n, k in _kinds(model).items()}


@suite.wrong(r"only the LAST linear layer is the output layer")
def first_linear_is_the_output(model, kind_rates):
    kinds = _kinds(model)
    first = [n for n, k in kinds.items() if k == "fc"][0]
    kinds[first] = "output"
    return {n: kind_rates[k] for n, k in kinds.items()}


@suite.wrong(r"not by the parameter's name")
def kinds_from_names(model, kind_rates):
    rates = {}
    names = [n for n, _ in model.named_parameters() if n.endswith("weight")]
    for n in names:
        rates[n] = kind_rates["conv"] if "conv" in n else kind_rates["fc"]
    rates[names[-1]] = kind_rates["output"]
    return rates


@suite.wrong(r"batch-norm layer's weight is a scale")
def every_weight(model, kind_rates):
    names = [n for n, _ in model.named_parameters() if n.endswith("weight")]
    rates = {n: kind_rates["conv"] if model.get_parameter(n).dim() > 2 else kind_rates["fc"] for n in names}
    rates[names[-1]] = kind_rates["output"]
    return rates


@suite.wrong(r"rates per kind")
def returns_the_rates_given(model, kind_rates):
    return dict(kind_rates)


@suite.wrong(r"rates are fractions")
def in_percent(model, kind_rates):
    return {n: 100 * r for n, r in by_module_type(model, kind_rates).items()}


@suite.wrong(r"is a module's name")
def module_names(model, kind_rates):
    return {n.removesuffix(".weight"): r for n, r in by_module_type(model, kind_rates).items()}


@suite.wrong(r"use the rates you are given, not the paper's")
def the_papers_rates(model, kind_rates):
    papers = {"conv": 0.1, "fc": 0.2, "output": 0.1}
    return {n: papers[k] for n, k in {**_kinds(model), **{list(_kinds(model))[-1]: "output"}}.items()}


@suite.wrong(r"each kind has its own rate")
def one_rate_for_all(model, kind_rates):
    return {n: kind_rates["fc"] for n in _kinds(model)}


@suite.wrong(r"changed the rates you were given in place")
def pops_the_output_rate(model, kind_rates):
    output = kind_rates.pop("output")
    rates = {n: kind_rates[k] for n, k in _kinds(model).items()}
    rates[list(rates)[-1]] = output
    return rates


@suite.wrong(r"no rate for")
def linear_layers_only(model, kind_rates):
    kinds = {n: k for n, k in _kinds(model).items() if k == "fc"}
    last = list(kinds)[-1]
    return {n: kind_rates["output" if n == last else "fc"] for n in kinds}


@suite.wrong(r"return a dict")
def returns_a_list(model, kind_rates):
    return list(by_module_type(model, kind_rates).values())
