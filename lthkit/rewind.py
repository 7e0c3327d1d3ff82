"""Rewinding: keeping a network's weights at some iteration and going back to them.

A winning ticket is a mask *together with* the weights the survivors had at the rewind
point (initialisation, or iteration k for late rewinding). ``Snapshot`` keeps those
weights, ``rewind_to`` puts them back bit for bit under a mask, and ``reinitialize`` gives
the control: the same mask on fresh random weights. ``reinitialize_keeping_signs`` is Zhou
et al. (2019)'s experiment between the two: fresh magnitudes, the rewound weights' signs.
``Ticket`` is the pair you can save, load, rebuild as a model, or hand to
``torch.nn.utils.prune``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from lthkit import files
from lthkit.masks import Mask, to_torch_prune
from lthkit.models import build_model, init_weights


@dataclass
class Snapshot:
    """A copy of a model's parameters and buffers after ``iteration`` training steps."""

    iteration: int
    state: dict[str, torch.Tensor]

    @classmethod
    def of(cls, model: nn.Module, iteration: int = 0) -> "Snapshot":
        return cls(iteration, {k: v.detach().clone() for k, v in model.state_dict().items()})

    def save(self, path: str | Path) -> None:
        files.save_torch(path, {"iteration": self.iteration, "state": {k: v.cpu() for k, v in self.state.items()}})

    @classmethod
    def load(cls, path: str | Path) -> "Snapshot":
        blob = files.load_torch(path)
        return cls(blob["iteration"], blob["state"])


@torch.no_grad()
def rewind_to(model: nn.Module, snapshot: Snapshot | Mapping[str, torch.Tensor],
              mask: Mapping[str, torch.Tensor] | None = None) -> nn.Module:
    """Set ``model``'s weights back to ``snapshot`` (or a state dict) and zero what ``mask``
    prunes, in place. Notebook 03 has the learner write this function.

    The optimiser is not part of a model: ``lthkit.train.train`` makes a fresh one each
    call, so a rewound network starts with no Adam moments or momentum.
    """
    model.load_state_dict(snapshot.state if isinstance(snapshot, Snapshot) else snapshot)
    if mask is not None:
        Mask(mask).apply_(model)
    return model


@torch.no_grad()
def reinitialize(model: nn.Module, mask: Mask, seed: int) -> nn.Module:
    """The control: keep the mask, draw fresh weights with the paper's initialiser from ``seed``,
    in place. Notebook 04 has the learner write this function."""
    init_weights(model, seed)
    return mask.apply_(model)


def keep_signs(initial: torch.Tensor, fresh: torch.Tensor) -> torch.Tensor:
    """``fresh``'s magnitudes with ``initial``'s signs. Notebook 08 has the learner write this function."""
    return torch.copysign(fresh.abs(), initial)


@torch.no_grad()
def reinitialize_keeping_signs(model: nn.Module, initial: Mapping[str, torch.Tensor], mask: Mask, seed: int,
                               signs=keep_signs) -> nn.Module:
    """Zhou et al. (2019)'s control: fresh weights drawn from ``seed`` as ``reinitialize`` draws
    them, each masked weight given the sign it has in ``initial`` (``signs(initial, fresh)``), in place.

    With the reinit control's seed, the two controls differ in the signs alone.
    """
    init_weights(model, seed)
    params = dict(model.named_parameters())
    for name in mask:
        fresh = params[name].detach().clone()
        signed = signs(initial[name].to(fresh.device).clone(), fresh.clone())
        if not isinstance(signed, torch.Tensor) or signed.shape != fresh.shape:
            raise ValueError(f"keep_signs must return a tensor of {name}'s shape {tuple(fresh.shape)}, "
                             f"not {getattr(signed, 'shape', type(signed).__name__)}")
        params[name].copy_(signed)
    return mask.apply_(model)


@dataclass
class Ticket:
    """A mask and the rewound weights of its survivors: everything needed to retrain it."""

    model: str
    input_shape: tuple[int, ...]
    num_classes: int
    mask: Mask
    snapshot: Snapshot

    def to_model(self) -> nn.Module:
        """The ticket as a network ready to train: rewound weights, pruned weights zero."""
        model = build_model(self.model, self.input_shape, self.num_classes)
        return rewind_to(model, self.snapshot, self.mask)

    def to_torch_prune(self) -> nn.Module:
        """The ticket as a network pruned with ``torch.nn.utils.prune`` (``weight_orig``/``weight_mask``)."""
        return to_torch_prune(self.to_model(), self.mask)

    def sparse_state_dict(self) -> dict[str, torch.Tensor]:
        """Rewound weights with each pruned layer in sparse (COO) form: only survivors are stored."""
        state = self.to_model().state_dict()
        return {k: (v.to_sparse() if k in self.mask else v) for k, v in state.items()}

    def save(self, path: str | Path) -> None:
        files.save_torch(path, {
            "model": self.model, "input_shape": list(self.input_shape), "num_classes": self.num_classes,
            "mask": self.mask.state_dict(), "iteration": self.snapshot.iteration,
            "state": {k: v.cpu() for k, v in self.snapshot.state.items()},
        })

    @classmethod
    def load(cls, path: str | Path) -> "Ticket":
        blob = files.load_torch(path)
        return cls(blob["model"], tuple(blob["input_shape"]), blob["num_classes"],
                   Mask.from_state_dict(blob["mask"]), Snapshot(blob["iteration"], blob["state"]))
