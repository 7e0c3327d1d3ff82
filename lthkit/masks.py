"""Masks and the rules that compute them.

A ``Mask`` maps each prunable weight's name to a 0/1 tensor of the same shape. The model
keeps ordinary dense weights; the mask is enforced in two places during training (see
``lthkit.train``): gradients of pruned weights are zeroed before the optimiser step, so
Adam's moments for them stay exactly zero, and weights are multiplied by the mask after
the step, so nothing (weight decay, momentum, rounding) can regrow them.

Masking alone makes a model neither smaller nor faster: the zeros are still stored and
multiplied. ``to_torch_prune`` hands a ticket to ``torch.nn.utils.prune``, and
``Ticket.sparse_state_dict`` (in ``lthkit.rewind``) stores only the survivors.

Pruning rules follow the paper: magnitudes are absolute values, a rate is the fraction of
the weights *still alive* in a layer to remove this round, and ties are broken by position
so that exactly ``round(rate * alive)`` weights go.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from lthkit import files
from lthkit.models import prunable_layers


class Mask(Mapping[str, torch.Tensor]):
    """Prunable weight name to a 0/1 tensor (1 = alive)."""

    def __init__(self, tensors: Mapping[str, torch.Tensor]):
        self._tensors: dict[str, torch.Tensor] = {}
        for name, t in tensors.items():
            t = t.detach().to(torch.float32)
            if not bool(((t == 0) | (t == 1)).all()):
                raise ValueError(f"mask for {name} holds values other than 0 and 1")
            self._tensors[name] = t

    @classmethod
    def ones_like(cls, model: nn.Module) -> "Mask":
        params = dict(model.named_parameters())
        return cls({name: torch.ones_like(params[name]) for name in prunable_layers(model)})

    def __getitem__(self, name: str) -> torch.Tensor:
        return self._tensors[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._tensors)

    def __len__(self) -> int:
        return len(self._tensors)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Mask)
            and self.keys() == other.keys()
            and all(torch.equal(self[n].cpu(), other[n].cpu()) for n in self)
        )

    def alive(self, name: str | None = None) -> int:
        """Surviving weights in one layer, or in all of them, counted as integers (a float32 sum
        stops counting exactly past 2**24 ones)."""
        names = [name] if name is not None else list(self)
        return sum(_count(self[n]) for n in names)

    def size(self, name: str | None = None) -> int:
        names = [name] if name is not None else list(self)
        return sum(self[n].numel() for n in names)

    def weights_remaining(self) -> float:
        """Fraction of prunable weights still alive (1.0 for a dense network)."""
        return self.alive() / self.size()

    def sparsity(self) -> float:
        return 1.0 - self.weights_remaining()

    def report(self) -> dict[str, dict[str, float | int]]:
        """Per layer: weights alive, total and fraction remaining."""
        return {
            n: {"alive": self.alive(n), "total": self.size(n), "weights_remaining": self.alive(n) / self.size(n)}
            for n in self
        }

    def to(self, device: str | torch.device) -> "Mask":
        return Mask({n: t.to(device) for n, t in self.items()})

    @torch.no_grad()
    def apply_(self, model: nn.Module) -> nn.Module:
        """Zero the pruned weights of ``model`` in place."""
        params = dict(model.named_parameters())
        for name, m in self.items():
            params[name].mul_(m.to(params[name].device))
        return model

    @torch.no_grad()
    def mask_grads_(self, model: nn.Module) -> None:
        params = dict(model.named_parameters())
        for name, m in self.items():
            if params[name].grad is not None:
                params[name].grad.mul_(m.to(params[name].device))

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {n: t.to(torch.bool).cpu() for n, t in self.items()}

    @classmethod
    def from_state_dict(cls, state: Mapping[str, torch.Tensor]) -> "Mask":
        return cls(state)

    def save(self, path: str | Path) -> None:
        files.save_torch(path, self.state_dict())

    @classmethod
    def load(cls, path: str | Path) -> "Mask":
        return cls(files.load_torch(path))


def _count(t: torch.Tensor) -> int:
    """How many entries of a 0/1 tensor are 1, as an exact integer."""
    return int(torch.count_nonzero(t).item())


def check_rate(rate: float, what: str = "pruning rate") -> float:
    if not isinstance(rate, (int, float)) or isinstance(rate, bool) or math.isnan(rate) or not 0.0 <= rate < 1.0:
        raise ValueError(
            f"{what} {rate!r} is outside [0, 1): it is the fraction of the weights still alive to remove "
            f"this round, so 0.2 removes a fifth of them"
        )
    return float(rate)


def layer_rates(model: nn.Module, kind_rates: Mapping[str, float]) -> dict[str, float]:
    """Turn rates per kind (``conv``, ``fc``, ``output``) into rates per weight name."""
    rates = {}
    for name, kind in prunable_layers(model).items():
        if kind not in kind_rates:
            raise ValueError(f"no pruning rate given for {kind} layers (needed for {name})")
        rates[name] = check_rate(kind_rates[kind], f"pruning rate for {kind} layers")
    return rates


def count_to_prune(rate: float, alive: int) -> int:
    """How many of ``alive`` weights a ``rate`` removes: ``rate * alive`` rounded, halves up."""
    return math.floor(rate * alive + 0.5)


def _prune_smallest(scores: torch.Tensor, alive: torch.Tensor, count: int) -> torch.Tensor:
    """A new flat 0/1 mask with the ``count`` smallest-scoring alive entries removed."""
    alive_idx = alive.nonzero().flatten()
    order = torch.argsort(scores[alive_idx], stable=True)
    new = alive.clone()
    new[alive_idx[order[:count]]] = 0
    return new


@torch.no_grad()
def prune_layer(weights: torch.Tensor, mask: torch.Tensor, rate: float) -> torch.Tensor:
    """One layer's magnitude pruning: a new mask (``mask`` is left as it is) without the
    ``count_to_prune(rate, alive)`` alive weights of smallest absolute value.

    Already-pruned weights neither count toward the rate nor come back; ties are broken by
    position, so exactly that many go. Notebook 02 has the learner write this function.
    """
    flat = mask.flatten().cpu()
    count = count_to_prune(check_rate(rate), _count(flat))
    return _prune_smallest(weights.detach().abs().flatten().cpu(), flat, count).view_as(mask).to(mask.device)


@torch.no_grad()
def prune_by_magnitude(model: nn.Module, mask: Mask, rates: Mapping[str, float],
                       rule: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor] = prune_layer) -> Mask:
    """Layer-wise magnitude pruning: in each layer remove ``rates[name]`` of its alive weights,
    with ``rule`` (``prune_layer``, or a learner's function with its signature)."""
    params = dict(model.named_parameters())
    return Mask({name: rule(params[name].detach(), m, rates[name]) for name, m in mask.items()})


@torch.no_grad()
def prune_globally(model: nn.Module, mask: Mask, rate: float) -> Mask:
    """Global magnitude pruning: remove ``rate`` of all alive weights, wherever they are smallest."""
    check_rate(rate)
    params = dict(model.named_parameters())
    names = list(mask)
    scores = torch.cat([params[n].detach().abs().flatten().cpu() for n in names])
    flat = torch.cat([mask[n].flatten().cpu() for n in names])
    pruned = _prune_smallest(scores, flat, count_to_prune(rate, _count(flat)))
    out, start = {}, 0
    for n in names:
        size = mask[n].numel()
        out[n] = pruned[start:start + size].view_as(mask[n]).to(mask[n].device)
        start += size
    return Mask(out)


def random_mask_like(mask: Mask, generator: torch.Generator) -> Mask:
    """A random mask with exactly as many alive weights in each layer as ``mask`` (the control)."""
    out = {}
    for name, m in mask.items():
        flat = torch.zeros(m.numel())
        flat[torch.randperm(m.numel(), generator=generator)[: _count(m)]] = 1
        out[name] = flat.view_as(m).to(m.device)
    return Mask(out)


def prune_randomly(mask: Mask, rates: Mapping[str, float], generator: torch.Generator) -> Mask:
    """Remove ``rates[name]`` of each layer's alive weights, chosen at random."""
    out = {}
    for name, m in mask.items():
        flat = m.flatten().cpu()
        scores = torch.rand(flat.numel(), generator=generator)
        count = count_to_prune(check_rate(rates[name]), _count(flat))
        out[name] = _prune_smallest(scores, flat, count).view_as(m).to(m.device)
    return Mask(out)


def _split_name(name: str) -> tuple[str, str]:
    module, _, param = name.rpartition(".")
    return module, param


def to_torch_prune(model: nn.Module, mask: Mask) -> nn.Module:
    """Attach ``mask`` with ``torch.nn.utils.prune`` (``weight_orig`` and ``weight_mask``), in place.

    Each ``weight_mask`` is put on its weight's device (a mask kept on the CPU prunes a model
    on a GPU) and in its weight's floating-point type."""
    params = dict(model.named_parameters())
    for name, m in mask.items():
        module, param = _split_name(name)
        weight = params[name]
        torch_prune.custom_from_mask(model.get_submodule(module), param, m.to(weight.device, weight.dtype))
    return model


def from_torch_prune(model: nn.Module) -> Mask:
    """Read the masks ``torch.nn.utils.prune`` attached, and make the pruning permanent in place.

    Afterwards the model holds plain weights with zeros where it was pruned, so it can be
    copied (``copy.deepcopy`` fails on a module that still carries prune's hooks) and used
    with every lthkit function.
    """
    masks = {}
    for module_name, module in model.named_modules():
        for hook in list(module._forward_pre_hooks.values()):
            if isinstance(hook, torch_prune.BasePruningMethod):
                param = hook._tensor_name
                masks[f"{module_name}.{param}" if module_name else param] = getattr(module, f"{param}_mask").detach().clone()
                torch_prune.remove(module, param)
    if not masks:
        raise ValueError("the model carries no torch.nn.utils.prune masks")
    return Mask(masks)
