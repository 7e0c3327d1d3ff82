"""Notebook 06's code exercise: the point of the line between two networks (instability analysis).

The learner writes ``interpolate(a, b, alpha)`` over two state dicts of a batch-norm network, and the
notebook's instability analysis walks the line with it. The classic mistakes: interpolating only the
parameters (``named_parameters``), so the batch-norm running statistics are missing or stay those of
one end; interpolating the integer step counter into a float; the line run the wrong way; ``alpha``
ignored; an end edited in place; another dtype.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

from lthkit.course.code_exercises.common import Mistake, _judge, _run
from lthkit.course.verdicts import Verdict, exercise
from lthkit.models import build_model
from lthkit.seeds import generator
from lthkit.stability import interpolate

ALPHAS = (0.0, 1.0, 0.3, 0.75)


def _ends() -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Two ResNet-20 state dicts of different seeds, with batch-norm statistics and step counts that
    differ between the ends (a fresh network's are all 0 and 1)."""
    ends = []
    for seed in (1, 2):
        state = build_model("resnet20", (3, 32, 32), seed=seed).state_dict()
        g = generator("check", "interpolate", seed)
        for name, value in state.items():
            if name.endswith("running_mean"):
                value.copy_(torch.randn(value.shape, generator=g))
            elif name.endswith("running_var"):
                value.copy_(torch.rand(value.shape, generator=g) + 0.5)
            elif name.endswith("num_batches_tracked"):
                value.fill_(100 * seed)
        ends.append({k: v.clone() for k, v in state.items()})
    return ends[0], ends[1]


def _is_buffer(name: str) -> bool:
    return name.rsplit(".", 1)[-1] in ("running_mean", "running_var", "num_batches_tracked")


def _judge_point(fn: Callable, a: dict, b: dict, alpha: float) -> None:
    given_a, given_b = {k: v.clone() for k, v in a.items()}, {k: v.clone() for k, v in b.items()}
    out = _run(fn, given_a, given_b, alpha)
    if any(not torch.equal(given_a[k], a[k]) for k in a) or any(not torch.equal(given_b[k], b[k]) for k in b):
        raise Mistake("you changed `a` or `b` in place: both ends are used again for every point of the line; "
                      "build new tensors (torch.lerp, or (1 - alpha) * a[k] + alpha * b[k])")
    if not isinstance(out, Mapping):
        raise Mistake(f"return a state dict ({{name: tensor}}, what model.load_state_dict takes), not "
                      f"{type(out).__name__}")
    missing, extra = sorted(set(a) - set(out)), sorted(set(out) - set(a))
    if missing and all(_is_buffer(k) for k in missing):
        raise Mistake(f"the batch-norm buffers are missing ({missing[0]}, ...): interpolate every entry of the state "
                      f"dict, running statistics included, not only model.named_parameters()")
    if missing or extra:
        raise Mistake(f"return exactly the state dict's entries: missing {missing[:3]}, unexpected {extra[:3]}")
    for k in a:
        got = out[k]
        if not isinstance(got, torch.Tensor):
            raise Mistake(f"{k}: each entry must be a tensor, not {type(got).__name__}")
        if got.shape != a[k].shape:
            raise Mistake(f"{k}: shape {tuple(got.shape)} instead of {tuple(a[k].shape)}")
        if not a[k].is_floating_point():
            if got.dtype != a[k].dtype:
                raise Mistake(f"{k} is an integer counter ({a[k].dtype}) and became {got.dtype}: interpolate the "
                              f"floating-point entries only and take integer ones from `a` (load_state_dict "
                              f"would refuse or round them)")
            continue
        if got.dtype != a[k].dtype:
            raise Mistake(f"{k}: dtype {got.dtype} instead of the network's {a[k].dtype}: keep each entry's dtype")
    want = interpolate(a, b, alpha)
    floats = [k for k in a if a[k].is_floating_point()]

    def close(x: dict, y: dict, keys) -> bool:
        return all(torch.allclose(x[k], y[k], rtol=1e-5, atol=1e-6) for k in keys)

    if close(out, want, floats):
        return
    stats = [k for k in floats if _is_buffer(k)]
    params = [k for k in floats if not _is_buffer(k)]
    if close(out, want, params):
        for end, name in ((a, "`a`"), (b, "`b`")):
            if close(out, end, stats):
                raise Mistake(f"the weights are right but the batch-norm running statistics are not interpolated (they "
                              f"are {name}'s at alpha = {alpha:g}): interpolate every floating-point entry of the "
                              f"state dict")
        raise Mistake(f"the weights are right but the batch-norm running statistics are not (1 - alpha) * a + alpha * "
                      f"b at alpha = {alpha:g}: interpolate each statistic as it is stored (running_var is a variance)")
    if close(out, interpolate(a, b, 1 - alpha), floats):
        raise Mistake(f"at alpha = {alpha:g} you returned the point {1 - alpha:g} of the way: the line runs from a "
                      f"(alpha = 0) to b (alpha = 1), (1 - alpha) * a + alpha * b")
    if close(out, interpolate(a, b, 0.5), floats):
        raise Mistake(f"at alpha = {alpha:g} you returned the midpoint: use alpha, (1 - alpha) * a + alpha * b")
    raise Mistake(f"at alpha = {alpha:g} the entries are not (1 - alpha) * a + alpha * b "
                  f"(for example {floats[0]})")


@exercise("06.interpolate", reference=interpolate)
def _interpolate_exercise(fn) -> Verdict:
    def cases() -> str:
        a, b = _ends()
        for alpha in ALPHAS:
            _judge_point(fn, a, b, alpha)
        return (f"gives (1 - alpha) a + alpha b for every weight and batch-norm statistic at alpha = "
                f"{', '.join(f'{x:g}' for x in ALPHAS)}, keeps integer counters integers, and leaves both ends as they were.")
    return _judge("interpolate", cases)
