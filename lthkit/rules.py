"""The steps of IMP a learner writes (``Rules``), how each is checked every round, and the
fingerprint that tells a resume whether the rules are the ones its rounds were made with."""

from __future__ import annotations

import functools
import hashlib
import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields

import torch

from lthkit.masks import Mask, layer_rates, prune_by_magnitude, prune_layer, random_mask_like
from lthkit.rewind import Snapshot, keep_signs, reinitialize, reinitialize_keeping_signs, rewind_to
from lthkit.train import masked_step


@dataclass(frozen=True)
class Rules:
    """The steps of IMP a learner writes in notebooks 02-04; each defaults to lthkit's own.

    - ``prune_layer(weights, mask, rate) -> mask``: one layer's magnitude pruning;
    - ``rewind(model, initial, mask) -> model``: the ticket, the ``initial`` state dict under the mask;
    - ``reinit(model, mask, seed) -> model``: the same mask on fresh weights drawn from ``seed``;
    - ``random_mask(mask, generator) -> mask``: as many weights per layer, at random positions;
    - ``keep_signs(initial, fresh) -> tensor``: one layer's fresh magnitudes with the initial signs
      (the ``signs`` control; notebook 08);
    - ``score(model, ..., mask=mask) -> {name: scores}``: the score of a run pruning at
      initialisation, called as the method's own is (SNIP's: ``score(model, images, labels, mask=mask)``;
      notebook 07 has the learner write it);
    - ``masked_step(model, mask, optimizer, loss)``: one optimiser step that keeps pruned weights at
      zero (``lthkit.train.masked_step``; notebook 03);
    - ``layer_rates(model, kind_rates) -> {weight name: rate}``: each layer's pruning rate from the
      rates per kind (``lthkit.masks.layer_rates``; notebook 05).

    Masks are dicts of 0/1 tensors (a ``Mask`` is one). ``run_imp`` checks what each rule
    returns every round, so a broken rule stops the run with its name instead of a wrong curve.
    """

    prune_layer: Callable = prune_layer
    rewind: Callable = rewind_to
    reinit: Callable = reinitialize
    random_mask: Callable = random_mask_like
    keep_signs: Callable = keep_signs
    score: Callable | None = None
    masked_step: Callable = masked_step
    layer_rates: Callable = layer_rates

    # Each step as IMP takes it: lthkit's own, or the learner's, whose answer is checked.

    def pruned(self, trained: torch.nn.Module, mask: Mask, kind_rates: Mapping[str, float]) -> Mask:
        """Layer-wise magnitude pruning of ``trained`` under ``mask`` at the rates per kind of layer."""
        rates = layer_rates(trained, kind_rates) if self.layer_rates is layer_rates else \
            _checked_rates(self.layer_rates(trained, dict(kind_rates)), mask)
        if self.prune_layer is prune_layer:
            return prune_by_magnitude(trained, mask, rates)
        params = dict(trained.named_parameters())
        return _checked_mask("prune_layer", {n: self.prune_layer(params[n].detach().clone(), m.clone(), rates[n])
                                             for n, m in mask.items()}, mask)

    def rewound(self, model: torch.nn.Module, point: Snapshot, mask: Mask) -> torch.nn.Module:
        """``model`` set to the rewind point's weights under ``mask``."""
        if self.rewind is rewind_to:
            return rewind_to(model, point, mask)
        initial = {n: v.clone() for n, v in point.state.items()}
        return _checked_model("rewind", self.rewind(model, initial, _copy(mask)), mask)

    def reinitialized(self, model: torch.nn.Module, mask: Mask, seed: int) -> torch.nn.Module:
        """``model`` on fresh weights drawn from ``seed``, under ``mask``."""
        if self.reinit is reinitialize:
            return reinitialize(model, mask, seed)
        return _checked_model("reinit", self.reinit(model, _copy(mask), seed), mask)

    def random_mask_of(self, mask: Mask, g: torch.Generator) -> Mask:
        """As many weights per layer as ``mask`` keeps, at random positions drawn from ``g``."""
        if self.random_mask is random_mask_like:
            return random_mask_like(mask, g)
        return _checked_mask("random_mask", self.random_mask(_copy(mask), g), mask, same_counts=True)

    def signs_kept(self, fresh: Callable[[], torch.nn.Module], initial: dict[str, torch.Tensor], mask: Mask,
                   seed: int) -> torch.nn.Module:
        """The ``reinitialized`` control's magnitudes (``fresh()`` drawn from ``seed``) with the
        ``initial`` weights' signs, under ``mask``."""
        if self.keep_signs is keep_signs:
            return reinitialize_keeping_signs(fresh(), initial, mask, seed)
        try:
            model = reinitialize_keeping_signs(fresh(), initial, mask, seed, self.keep_signs)
        except ValueError as err:
            raise RuleError(f"your {err}") from None
        params, magnitudes = dict(model.named_parameters()), reinitialize(fresh(), mask, seed)
        for name, m in mask.items():
            kept, w = m.cpu().bool(), params[name].detach().cpu()
            if not torch.equal(w[kept].sign(), initial[name].cpu()[kept].sign()):
                raise RuleError(f"your keep_signs gave weights of {name} signs other than the initial ones")
            if not torch.equal(w[kept].abs(), magnitudes.get_parameter(name).detach().cpu()[kept].abs()):
                raise RuleError(f"your keep_signs did not keep the fresh magnitudes of {name}")
        return model

    def describe(self) -> dict[str, str]:
        """The rules that are not lthkit's, each named with a fingerprint of its code: a run
        resumed with an edited rule would otherwise mix two rules' rounds."""
        return {f.name: _fingerprint(getattr(self, f.name)) for f in fields(self)
                if getattr(self, f.name) is not f.default}


def _fingerprint(fn: Callable) -> str:
    """A rule's name and a hash of what it computes, the same in every process: a ``repr`` holds a
    memory address, so a rule that fell back to it could never be resumed."""
    inner = fn.func if isinstance(fn, functools.partial) else None
    name = f"partial({getattr(inner, '__qualname__', '')})" if inner else getattr(fn, "__qualname__", type(fn).__qualname__)
    return f"{name} {hashlib.sha256(_code_of(fn).encode()).hexdigest()[:12]}"


def _code_of(obj, seen: frozenset = frozenset()) -> str:
    """Text standing for what ``obj`` computes: a partial's function and arguments, a function's
    source (or bytecode) with its defaults, the values it closes over and the module's functions it
    calls (a helper edited is a rule edited), a callable object's class; other values their ``repr``,
    addresses removed."""
    if id(obj) in seen:
        return "<recursion>"
    seen = seen | {id(obj)}
    if isinstance(obj, functools.partial):
        return "partial(" + ", ".join([_code_of(obj.func, seen), *(_code_of(a, seen) for a in obj.args),
                                       *(f"{k}={_code_of(v, seen)}" for k, v in sorted(obj.keywords.items()))]) + ")"
    if inspect.ismethod(obj):
        return _code_of(obj.__func__, seen) + " of " + _code_of(obj.__self__, seen)
    if inspect.isfunction(obj):
        return _function_code(obj, seen)
    if isinstance(obj, torch.Tensor):
        return f"tensor {tuple(obj.shape)} {hashlib.sha256(obj.detach().cpu().contiguous().numpy().tobytes()).hexdigest()}"
    if callable(obj) and not isinstance(obj, type) and not inspect.isbuiltin(obj):
        return f"{type(obj).__qualname__}: {_source(type(obj))} {_address_free(repr(vars(obj)) if hasattr(obj, '__dict__') else '')}"
    return _address_free(repr(obj))


def _function_code(fn, seen: frozenset) -> str:
    code = fn.__code__
    def own(value) -> bool:  # a library's function is not the rule's code; the learner's helpers are
        return not inspect.isfunction(value) or value.__module__ == fn.__module__

    helpers = [fn.__globals__[name] for name in code.co_names
               if inspect.isfunction(fn.__globals__.get(name)) and own(fn.__globals__[name])]
    closure = [c.cell_contents for c in fn.__closure__ or () if _filled(c) and own(c.cell_contents)]
    return " ".join([_source(fn), *(_code_of(v, seen) for v in (fn.__defaults__ or ())),
                     *(_code_of(v, seen) for v in closure), *(_code_of(h, seen) for h in helpers)])


def _filled(cell) -> bool:
    try:
        cell.cell_contents
    except ValueError:
        return False
    return True


def _source(obj) -> str:
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):
        code = getattr(obj, "__code__", None)
        return code.co_code.hex() + _address_free(repr(code.co_consts)) if code else type(obj).__qualname__


def _address_free(text: str) -> str:
    return re.sub(r" at 0x[0-9a-fA-F]+", "", text)


class RuleError(ValueError):
    """A learner's rule (``Rules``) returned something IMP cannot use."""


def _checked_mask(rule: str, new, old: Mask, *, same_counts: bool = False) -> Mask:
    if not isinstance(new, Mapping) or set(new) != set(old):
        raise RuleError(f"your {rule} must return a mask for each of {sorted(old)}, not {type(new).__name__}")
    for name, t in new.items():
        if not isinstance(t, torch.Tensor) or t.shape != old[name].shape:
            raise RuleError(f"your {rule} returned for {name} {getattr(t, 'shape', type(t).__name__)}, "
                            f"not a tensor of shape {tuple(old[name].shape)}")
    try:
        mask = Mask(new)
    except ValueError as e:
        raise RuleError(f"your {rule}: {e}") from None
    for name in old:
        if same_counts and mask.alive(name) != old.alive(name):
            raise RuleError(f"your {rule} keeps {mask.alive(name)} weights in {name}, the ticket "
                            f"{old.alive(name)}: a control keeps as many weights in each layer")
        if not same_counts and bool((mask[name].cpu() > old[name].cpu()).any()):
            raise RuleError(f"your {rule} brought back weights of {name} that were pruned before")
    return mask


def _checked_rates(rates, mask: Mask) -> dict[str, float]:
    if not isinstance(rates, Mapping) or set(rates) != set(mask):
        got = sorted(rates) if isinstance(rates, Mapping) else type(rates).__name__
        raise RuleError(f"your layer_rates must return a rate for each of {sorted(mask)}, not {got}")
    bad = {n: r for n, r in rates.items() if not 0 <= float(r) < 1}
    if bad:
        raise RuleError(f"your layer_rates returned rates outside [0, 1): {bad}")
    return {n: float(r) for n, r in rates.items()}


def _copy(mask: Mask) -> dict[str, torch.Tensor]:
    """What a learner's rule is given: its own copy, so changing it in place harms nothing."""
    return {n: m.clone() for n, m in mask.items()}


def _checked_model(rule: str, model, mask: Mask) -> torch.nn.Module:
    if not isinstance(model, torch.nn.Module):
        raise RuleError(f"your {rule} must return the model, not {type(model).__name__}")
    params = dict(model.named_parameters())
    wrapped = [n for n in params if n.endswith("_orig")]
    if wrapped:
        raise RuleError(f"your {rule} returned a model still pruned with torch.nn.utils.prune ({wrapped[0]}): "
                        f"call torch.nn.utils.prune.remove(module, 'weight') on each layer")
    for name, m in mask.items():
        if bool((params[name].detach().cpu()[m.cpu() == 0] != 0).any()):
            raise RuleError(f"your {rule} left pruned weights of {name} non-zero: apply the mask")
    return model
