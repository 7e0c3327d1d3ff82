"""Notebook 05's code exercise: the per-layer pruning rates of a conv net, from rates per kind.

Frankle & Carbin prune each kind of layer at its own rate (Conv-2/4: convolutions 10% a round,
Conv-6 15%; fully-connected layers 20%; the output layer 10%), and only weights, never biases. The
learner writes ``layer_rates(model, kind_rates) -> {weight name: rate}`` and IMP's loop prunes the
notebook's conv nets with it (``Rules(layer_rates=...)``). The classic mistakes: biases (or a
ResNet's batch-norm weights) given rates, the output layer treated as one more fully-connected
layer, kinds read from parameter names instead of module types, the rates given ignored, percentages
instead of fractions, module names instead of parameter names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from torch import nn

from lthkit.course.code_exercises.common import Mistake, _judge, _run
from lthkit.course.verdicts import Verdict, exercise
from lthkit.masks import layer_rates
from lthkit.models import build_model, prunable_layers

CASES = (  # (model, its input, rates per kind): unlike rates, so that a swapped kind shows
    ("conv2", (3, 32, 32), {"conv": 0.1, "fc": 0.2, "output": 0.1}),
    ("conv6", (3, 32, 32), {"conv": 0.15, "fc": 0.2, "output": 0.1}),
    ("conv4", (3, 32, 32), {"conv": 0.35, "fc": 0.25, "output": 0.05}),
    ("resnet20", (3, 32, 32), {"conv": 0.2, "fc": 0.2, "output": 0.3}),
    ("lenet300", (1, 28, 28), {"conv": 0.5, "fc": 0.2, "output": 0.1}),
)


def _kind_of(model: nn.Module, name: str) -> str:
    """What parameter ``name`` belongs to, in words for a hint."""
    module_name, _, leaf = name.rpartition(".")
    try:
        module = model.get_submodule(module_name)
    except AttributeError:
        return "no parameter"
    return f"the {leaf} of a {type(module).__name__}"


def _judge_model(fn: Callable, model_name: str, shape, kind_rates: dict) -> None:
    model = build_model(model_name, shape, seed=0)
    want = layer_rates(model, kind_rates)
    given = dict(kind_rates)
    out = _run(fn, model, given)
    case = f"{model_name} with rates {kind_rates}"
    if given != kind_rates:
        raise Mistake(f"{case}: you changed the rates you were given in place: read them only")
    if not isinstance(out, Mapping):
        raise Mistake(f"{case}: return a dict {{weight name: rate}}, not {type(out).__name__}")
    if set(out) <= set(kind_rates) and out:
        raise Mistake(f"{case}: you returned rates per kind ({sorted(out)}); return one per weight, keyed by its "
                      f"parameter name such as {next(iter(want))!r}")
    params = dict(model.named_parameters())
    strangers = [k for k in out if k not in params]
    if strangers:
        if any(f"{k}.weight" in params for k in strangers):
            raise Mistake(f"{case}: {strangers[0]!r} is a module's name; key each rate by the weight's parameter name, "
                          f"{strangers[0]}.weight")
        raise Mistake(f"{case}: {strangers[0]!r} is not a parameter of the model: key each rate by a name from "
                      f"model.named_parameters()")
    extra = [k for k in out if k not in want]
    if extra:
        what = _kind_of(model, extra[0])
        if extra[0].endswith(".bias"):
            raise Mistake(f"{case}: you gave a rate to {extra[0]}, {what}: only weights are pruned, never biases "
                          f"(as in the paper)")
        raise Mistake(f"{case}: you gave a rate to {extra[0]}, {what}: only the weights of convolutions and linear "
                      f"layers are pruned (a batch-norm layer's weight is a scale, not a connection)")
    missing = [k for k in want if k not in out]
    if missing:
        raise Mistake(f"{case}: no rate for {missing[0]} ({_kind_of(model, missing[0])}): every convolution's and "
                      f"linear layer's weight needs one")
    values = {k: float(v) for k, v in out.items()}
    if any(v > 1 for v in values.values()):
        raise Mistake(f"{case}: a rate of {max(values.values()):g}: rates are fractions (0.2 for 20%), as given")
    kinds = prunable_layers(model)
    wrong = [n for n in want if abs(values[n] - want[n]) > 1e-12]
    if not wrong:
        return
    n = wrong[0]
    if len(set(values.values())) == 1:
        raise Mistake(f"{case}: every layer got {values[n]:g}: each kind has its own rate")
    papers = [layer_rates(model, {"conv": conv, "fc": 0.2, "output": 0.1}) for conv in (0.1, 0.15)]
    if any(all(abs(values[k] - paper[k]) < 1e-12 for k in want) for paper in papers):
        raise Mistake(f"{case}: you used the paper's rates, not the ones given: use the rates you are given, not "
                      f"the paper's (the notebook's budget and other nets change them)")
    output = next(k for k, kind in kinds.items() if kind == "output")
    if n == output and abs(values[n] - kind_rates["fc"]) < 1e-12:
        raise Mistake(f"{case}: the last linear layer ({n}) is the output layer, pruned at the output rate "
                      f"({kind_rates['output']:g}), not the fully-connected rate ({kind_rates['fc']:g})")
    if kinds[n] == "conv" and abs(values[n] - kind_rates["fc"]) < 1e-12:
        raise Mistake(f"{case}: {n}, a convolution's weight, got the fully-connected rate: tell the kinds apart by "
                      f"module type (nn.Conv2d, nn.Linear), not by the parameter's name")
    if abs(values[n] - kind_rates["output"]) < 1e-12:
        raise Mistake(f"{case}: {n} ({kinds[n]}) got the output rate: only the LAST linear layer is the output layer")
    raise Mistake(f"{case}: {n} ({kinds[n]}) got {values[n]:g}, not the rate given for its kind, "
                  f"{kind_rates[kinds[n]]:g}: use the rates you are given, not the paper's")


@exercise("05.layer-rates", reference=layer_rates)
def _layer_rates_exercise(fn) -> Verdict:
    def cases() -> str:
        for model_name, shape, rates in CASES:
            _judge_model(fn, model_name, shape, rates)
        return (f"gives every convolution's and linear layer's weight the rate of its kind, the last linear "
                f"layer the output rate, and no bias or batch-norm weight a rate, on "
                f"{', '.join(c[0] for c in CASES)}.")
    return _judge("layer_rates", cases)
