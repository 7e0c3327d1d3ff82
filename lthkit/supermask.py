"""Supermasks: a mask learned over random weights that never change.

Zhou et al. (2019) and Ramanujan et al. (2020) train no weight at all. Each prunable weight
gets a score of its own shape; the network computes with ``weight * mask(score)``, the
weights stay frozen at their random values, and only the scores learn. Whatever accuracy the
network reaches, the mask alone found it.

The mask is attached with ``torch.nn.utils.parametrize``, PyTorch's way of making a
parameter a function of others: ``module.weight`` becomes ``original * mask(scores)``, the
original is kept as ``module.parametrizations.weight.original`` with ``requires_grad``
off, and the scores live in the parametrization as the model's only trainable parameters.
``lthkit.train.train`` optimises exactly the parameters that require gradients, so the
usual loop trains a supermask, and ``finished`` turns one into a plain pruned network.

Two ways of making a 0/1 mask from scores, both passing the gradient straight through the
step that is not differentiable (the straight-through estimator, Bengio et al. 2013):

- ``sampled`` (Zhou et al.): keep each weight with probability sigmoid(score), sampled
  afresh at every forward pass in training; the mask learns its own sparsity. In evaluation
  one sample is used, always the same for the same scores (uniform noise drawn once, kept
  where sigmoid(score) exceeds it), so that a supermask is one mask and measuring it is
  deterministic; Zhou et al. evaluate fresh samples, which differ little.
- ``top_k`` (edge-popup, Ramanujan et al.): keep the fraction ``density`` of each layer's
  weights whose scores are largest in absolute value; the sparsity is what was asked.

``weights="signed_constant"`` replaces each weight by its sign times the standard deviation
of its layer, Zhou et al.'s and Ramanujan et al.'s best initialisation for supermasks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from torch.nn.utils import parametrize

from lthkit.masks import Mask
from lthkit.models import build_model, prunable_layers
from lthkit.seeds import generator
from lthkit.settings import ConfigError, choice, number, whole
from lthkit.train import TrainConfig, TrainRun, train

KINDS = ("sampled", "top_k")
WEIGHTS = ("initial", "signed_constant")

PAPER_TRAINING = {
    # Zhou et al.'s code: SGD with momentum 0.9 at learning rate 100 (a score moves the mask only
    # through the sigmoid's small slope), batches of 250.
    "sampled": {"optimizer": "sgd", "lr": 100.0, "momentum": 0.9, "batch_size": 250},
    # edge-popup's optimiser (SGD, momentum 0.9, learning rate 0.1) with weight decay on the scores,
    # at a constant rate (it decays the rate on a cosine) and Zhou et al.'s batches.
    "top_k": {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4, "batch_size": 250},
}
"""How each paper trains its scores; ``make_supermask_config`` starts from these."""


def sampled_mask(scores: torch.Tensor) -> torch.Tensor:
    """Zhou et al.'s mask: 1 with probability sigmoid(score), a fresh sample each call; the
    gradient flows to the probability as if the sample were it."""
    probability = torch.sigmoid(scores)
    sample = torch.bernoulli(probability.detach())
    return sample + (probability - probability.detach())


def kept(density: float, n: int) -> int:
    """How many of ``n`` weights a density keeps: ``density * n`` rounded half up, as IMP counts."""
    return math.floor(density * n + 0.5)


def top_k_mask(scores: torch.Tensor, density: float) -> torch.Tensor:
    """Edge-popup's mask: 1 for the ``kept(density, n)`` largest \\|scores\\|, 0 elsewhere; the
    gradient flows to \\|scores\\| unchanged. Any memory layout (a conv layer's scores are
    channels-last when the CPU loop trains it)."""
    magnitude = scores.abs()
    flat = magnitude.detach().reshape(-1)
    hard = torch.zeros_like(flat).scatter_(0, flat.topk(kept(density, flat.numel())).indices, 1.0)
    return hard.reshape(magnitude.shape) + (magnitude - magnitude.detach())


class Supermask(nn.Module):
    """The parametrization: ``weight -> weight * mask``, the mask made from learnable scores.

    ``mask_fn(scores)`` (``sampled_mask``, or ``top_k_mask`` with the layer's density bound)
    makes the training mask; ``mask()`` the one used in evaluation (for ``sampled``, one fixed sample).
    """

    def __init__(self, scores: torch.Tensor, kind: str, density: float | None = None,
                 mask_fn: Callable | None = None, noise: torch.Tensor | None = None):
        super().__init__()
        self.scores = nn.Parameter(scores)
        self.kind, self.density = kind, density
        self.mask_fn = mask_fn or (sampled_mask if kind == "sampled" else top_k_mask)
        if kind == "sampled":
            self.register_buffer("noise", noise if noise is not None else torch.rand_like(scores))

    def training_mask(self) -> torch.Tensor:
        return self.mask_fn(self.scores) if self.kind == "sampled" else self.mask_fn(self.scores, self.density)

    @torch.no_grad()
    def mask(self) -> torch.Tensor:
        """The 0/1 mask the network uses in evaluation."""
        if self.kind == "sampled":
            return (self.noise < torch.sigmoid(self.scores)).to(self.scores.dtype)
        return self.mask_fn(self.scores, self.density).detach()

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight * (self.training_mask() if self.training else self.mask())


@dataclass(frozen=True)
class SupermaskConfig:
    """One supermask training: which network, which mask, over which frozen weights, how trained.

    ``density`` is the fraction of each layer kept by ``top_k`` (``sampled`` learns its own and
    takes none). ``score_init`` is the sampled mask's starting score (0: every weight kept with
    probability one half, Zhou et al.'s); ``top_k`` scores start Kaiming-uniform, as edge-popup's.
    ``seed`` draws the weights, the scores and the samples; the batches follow ``training.data_seed``.
    """

    kind: str
    training: TrainConfig
    density: float | None = None
    weights: str = "signed_constant"
    model: str = "lenet300"
    seed: int = 0
    score_init: float = 0.0

    def __post_init__(self):
        choice("kind", self.kind, KINDS)
        choice("weights", self.weights, WEIGHTS)
        whole("seed", self.seed, None)
        object.__setattr__(self, "score_init", number("score_init", self.score_init))
        if self.kind == "top_k":
            if self.density is None or number("density", self.density, positive=True) > 1:
                raise ConfigError(f"a top_k supermask keeps a fraction of each layer: give density in (0, 1], "
                                  f"got {self.density!r}")
        elif self.density is not None:
            raise ConfigError(f"a sampled supermask learns its own density: give density None, not {self.density!r}")
        if not isinstance(self.training, TrainConfig):
            raise ConfigError(f"training must be a TrainConfig, got {type(self.training).__name__}")


def make_supermask_config(kind: str, iterations: int, *, density: float | None = None, seed: int = 0,
                          weights: str = "signed_constant", model: str = "lenet300", eval_every: int = 100,
                          **training) -> SupermaskConfig:
    """A ``SupermaskConfig`` with the paper's training for ``kind`` (``PAPER_TRAINING``), changed only by
    ``training`` (any ``TrainConfig`` field); the batches' order is the seed's."""
    if kind not in PAPER_TRAINING:
        raise ConfigError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    settings = {**PAPER_TRAINING[kind], "iterations": iterations, "eval_every": eval_every, "data_seed": seed,
                **training}
    return SupermaskConfig(kind=kind, training=TrainConfig(**settings), density=density, weights=weights,
                           model=model, seed=seed)


@torch.no_grad()
def signed_constant_(model: nn.Module) -> nn.Module:
    """Each prunable weight becomes sign(w) times its layer's standard deviation, in place."""
    params = dict(model.named_parameters())
    for name in prunable_layers(model):
        weight = params[name]
        weight.copy_(weight.sign() * weight.std())
    return model


def attach(model: nn.Module, config: SupermaskConfig, mask_fn: Callable | None = None) -> nn.Module:
    """Freeze every parameter of ``model`` and give each prunable weight a ``Supermask``, in place.

    ``mask_fn`` replaces the config's kind's own mask function (a learner's ``top_k_mask``). A
    density that would keep no weight of some layer (layer collapse) is refused before anything changes.
    """
    layers = prunable_layers(model)
    sizes = {name: p.numel() for name, p in model.named_parameters() if name in layers}
    empty = [name for name, n in sizes.items() if config.kind == "top_k" and kept(config.density, n) == 0]
    if empty:
        smallest = min(sizes.values())
        raise ConfigError(f"density {config.density} keeps no weight of {', '.join(empty)}: layer collapse, the "
                          f"output would not depend on the input; give a density of at least {1 / smallest:.2g}")
    if config.weights == "signed_constant":
        signed_constant_(model)
    for p in model.parameters():
        p.requires_grad_(False)
    modules = dict(model.named_modules())
    g = generator("supermask-scores", config.seed)
    for name in prunable_layers(model):
        module = modules[name.rsplit(".", 1)[0]]
        noise = None
        if config.kind == "sampled":
            scores = torch.full_like(module.weight, config.score_init)
            noise = torch.rand(scores.shape, generator=g).to(scores.device)
        else:
            scores = torch.empty_like(module.weight)
            bound = 1 / math.sqrt(nn.init._calculate_correct_fan(scores, "fan_in"))
            scores.copy_(torch.empty(scores.shape).uniform_(-bound, bound, generator=g))
        parametrize.register_parametrization(module, "weight", Supermask(scores, config.kind, config.density, mask_fn, noise))
    return model


def supermasks(model: nn.Module) -> dict[str, Supermask]:
    """Prunable weight name to its ``Supermask``."""
    modules = dict(model.named_modules())
    found = {}
    for name in prunable_layers(model):
        module = modules[name.rsplit(".", 1)[0]]
        if parametrize.is_parametrized(module, "weight"):
            found[name] = module.parametrizations.weight[0]
    if not found:
        raise ValueError("this model carries no supermask: attach one with lthkit.supermask.attach")
    return found


def mask_of(model: nn.Module) -> Mask:
    """The supermask the network uses in evaluation, as a ``Mask``."""
    return Mask({name: s.mask() for name, s in supermasks(model).items()})


def frozen_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """Each prunable weight's frozen values (the weights under the mask), as copies."""
    modules = dict(model.named_modules())
    return {name: modules[name.rsplit(".", 1)[0]].parametrizations.weight.original.detach().clone()
            for name in supermasks(model)}


def finished(model: nn.Module) -> nn.Module:
    """The network with its masks applied for good, in place: plain weights ``frozen * mask`` and no
    scores, every parameter trainable again (train it further with ``mask_of`` taken first as its
    mask). The evaluation mask is the one applied; the model is left in evaluation mode."""
    model.eval()
    for name in supermasks(model):
        parametrize.remove_parametrizations(dict(model.named_modules())[name.rsplit(".", 1)[0]], "weight")
    for p in model.parameters():
        p.requires_grad_(True)
    return model


@dataclass
class SupermaskRun:
    """A trained supermask: the network (frozen weights, learned scores), its mask and training."""

    config: SupermaskConfig
    model: nn.Module
    mask: Mask
    run: TrainRun = field(repr=False)

    @property
    def accuracy(self) -> float:
        """Test accuracy at the end of training: that of ``model`` and ``mask``, which are the final
        ones (a sampled mask's density drifts as it trains, so an earlier iteration's accuracy would
        belong to another mask)."""
        return self.run.result.curve[-1].test_accuracy

    def to_dict(self) -> dict:
        """What a results file keeps: the settings, the mask's sparsity per layer, the learning curve."""
        return {"config": asdict(self.config), "test_accuracy": self.accuracy,
                "weights_remaining": self.mask.weights_remaining(), "layers": self.mask.report(),
                "result": asdict(self.run.result)}


def train_supermask(config: SupermaskConfig, data, *, mask_fn: Callable | None = None, progress: bool = False,
                    desc: str = "supermask") -> SupermaskRun:
    """Build ``config.model`` from ``config.seed``, attach a supermask and train only its scores.

    The sampled masks draw from PyTorch's global random stream, seeded here from ``config.seed``,
    so the same config on the same device gives the same mask.
    """
    model = build_model(config.model, data.info.input_shape, data.info.num_classes, seed=config.seed)
    attach(model, config, mask_fn).to(data.device)
    torch.manual_seed(config.seed)
    run = train(model, data, config.training, progress=progress, desc=desc)
    return SupermaskRun(config, model, mask_of(model), run)
