"""The paper's networks, by name, with their initialisation and training hyperparameters.

Frankle & Carbin (2019) use LeNet-300-100 on MNIST and the VGG-like Conv-2/4/6 on
CIFAR-10, all initialised with Gaussian Glorot (``xavier_normal_``). Each entry of
``MODELS`` carries the paper's hyperparameters for that network, so a run that names only
the model gets the paper's settings, and every departure from them is explicit. ``vit`` is the
course's own small vision transformer (notebook 09), with the course's settings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lthkit.seeds import generator


@dataclass(frozen=True)
class PaperSetup:
    """Hyperparameters of the paper that introduced tickets for the network: Frankle & Carbin
    (2019), Figure 2 and Appendix, for LeNet and Conv-2/4/6; Frankle et al. (2020, "Linear Mode
    Connectivity and the Lottery Ticket Hypothesis"), Table 1, for ResNet-20."""

    dataset: str
    optimizer: str
    lr: float
    batch_size: int
    iterations: int
    prune_rates: dict[str, float]
    global_pruning: bool = False
    momentum: float = 0.9
    weight_decay: float = 0.0
    warmup: int = 0
    milestones: tuple[int, ...] = ()
    augment: bool = False


class LeNet300(nn.Module):
    """LeNet-300-100: two hidden fully-connected layers of 300 and 100 units."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int = 10):
        super().__init__()
        self.fc1 = nn.Linear(math.prod(input_shape), 300)
        self.fc2 = nn.Linear(300, 100)
        self.fc3 = nn.Linear(100, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.fc1(x.flatten(1)))
        x = torch.relu(self.fc2(x))
        return self.fc3(x)


class ConvNet(nn.Module):
    """Conv-2/4/6: pairs of 3x3 convolutions, each pair followed by 2x2 max-pooling, then FC 256-256."""

    def __init__(self, widths: tuple[int, ...], input_shape: tuple[int, ...], num_classes: int = 10):
        super().__init__()
        layers: list[nn.Module] = []
        channels, side = input_shape[0], input_shape[1]
        for i, width in enumerate(widths):
            layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU()]
            channels = width
            if i % 2 == 1:
                layers.append(nn.MaxPool2d(2))
                side //= 2
        self.features = nn.Sequential(*layers)
        self.fc1 = nn.Linear(channels * side * side, 256)
        self.fc2 = nn.Linear(256, 256)
        self.fc3 = nn.Linear(256, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x).flatten(1)
        x = torch.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        return self.fc3(x)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm, added to the input (through a 1x1 convolution when
    the shape changes)."""

    def __init__(self, channels_in: int, channels_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels_in, channels_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels_out)
        self.conv2 = nn.Conv2d(channels_out, channels_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or channels_in != channels_out:
            self.shortcut = nn.Sequential(nn.Conv2d(channels_in, channels_out, 1, stride, bias=False),
                                          nn.BatchNorm2d(channels_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet(nn.Module):
    """The CIFAR ResNet of He et al. (2016): three stages of ``blocks`` blocks, 16/32/64 wide.

    ``blocks=3`` is ResNet-20, the deeper network on which Frankle et al. (2019, 2020) found
    that rewinding to iteration 0 no longer finds tickets and rewinding to an early
    iteration does.
    """

    def __init__(self, blocks: int, input_shape: tuple[int, ...], num_classes: int = 10):
        super().__init__()
        self.conv = nn.Conv2d(input_shape[0], 16, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        layers, channels = [], 16
        for stage, width in enumerate((16, 32, 64)):
            for block in range(blocks):
                layers.append(BasicBlock(channels, width, 2 if stage > 0 and block == 0 else 1))
                channels = width
        self.blocks = nn.Sequential(*layers)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(torch.relu(self.bn(self.conv(x))))
        return self.fc(x.mean((2, 3)))


class TransformerBlock(nn.Module):
    """Pre-norm self-attention and MLP, each added back to its input (nanoGPT's block, not causal)."""

    def __init__(self, dim: int, heads: int, hidden: int):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        n, length, dim = z.shape
        q, k, v = self.qkv(self.norm1(z)).view(n, length, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        z = z + self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(n, length, dim))
        return z + self.fc2(F.gelu(self.fc1(self.norm2(z))))


class ViT(nn.Module):
    """A small vision transformer (Dosovitskiy et al. 2021): the image cut into ``patch`` x ``patch``
    patches, each embedded by one linear map, a class token, learned positions, ``depth`` blocks.

    Its prunable weights come in kinds of their own (``prunable_kinds``): the patch ``embedding``,
    ``attention`` (the query-key-value and output projections), ``mlp`` and the ``output`` head;
    positions, the class token, layer norms and biases are not pruned.
    """

    def __init__(self, input_shape: tuple[int, ...], num_classes: int = 10, patch: int = 7, dim: int = 64,
                 depth: int = 2, heads: int = 4, hidden: int = 128):
        super().__init__()
        channels, height, width = input_shape
        if height % patch or width % patch:
            raise ValueError(f"a {height}x{width} image does not cut into {patch}x{patch} patches")
        self.patch = patch
        self.embed = nn.Linear(channels * patch * patch, dim)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.zeros(1, 1 + (height // patch) * (width // patch), dim))
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads, hidden) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.embed(F.unfold(x, self.patch, stride=self.patch).transpose(1, 2))
        z = torch.cat([self.cls.expand(len(z), -1, -1), z], 1) + self.pos
        for block in self.blocks:
            z = block(z)
        return self.head(self.norm(z[:, 0]))

    def prunable_kinds(self) -> dict[str, str]:
        kinds = {"embed.weight": "embedding"}
        for i in range(len(self.blocks)):
            kinds |= {f"blocks.{i}.qkv.weight": "attention", f"blocks.{i}.proj.weight": "attention",
                      f"blocks.{i}.fc1.weight": "mlp", f"blocks.{i}.fc2.weight": "mlp"}
        return kinds | {"head.weight": "output"}


@dataclass(frozen=True)
class ModelSpec:
    build: type
    args: tuple
    paper: PaperSetup


MODELS: dict[str, ModelSpec] = {
    "lenet300": ModelSpec(LeNet300, (), PaperSetup("mnist", "adam", 1.2e-3, 60, 50_000, {"fc": 0.2, "output": 0.1})),
    "conv2": ModelSpec(ConvNet, ((64, 64),), PaperSetup("cifar10", "adam", 2e-4, 60, 20_000, {"conv": 0.1, "fc": 0.2, "output": 0.1})),
    "conv4": ModelSpec(ConvNet, ((64, 64, 128, 128),),
                       PaperSetup("cifar10", "adam", 3e-4, 60, 25_000, {"conv": 0.1, "fc": 0.2, "output": 0.1})),
    "conv6": ModelSpec(ConvNet, ((64, 64, 128, 128, 256, 256),),
                       PaperSetup("cifar10", "adam", 3e-4, 60, 30_000, {"conv": 0.15, "fc": 0.2, "output": 0.1})),
    "resnet20": ModelSpec(ResNet, (3,), PaperSetup(
        "cifar10", "sgd", 0.1, 128, 63_000, {"conv": 0.2, "output": 0.2}, global_pruning=True,
        weight_decay=1e-4, milestones=(32_000, 48_000), augment=True)),
    # No paper: the course's settings (LeNet's optimiser and batch, 10 epochs), every kind at 20% but the head.
    "vit": ModelSpec(ViT, (), PaperSetup("mnist", "adam", 1e-3, 60, 9_170,
                                         {"embedding": 0.2, "attention": 0.2, "mlp": 0.2, "output": 0.1})),
}


def model_spec(name: str) -> ModelSpec:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}: choose one of {', '.join(MODELS)}")
    return MODELS[name]


def build_model(name: str, input_shape: tuple[int, ...], num_classes: int = 10, *, seed: int = 0) -> nn.Module:
    """A freshly initialised network; the same ``seed`` gives the same weights bit for bit."""
    spec = model_spec(name)
    model = spec.build(*spec.args, input_shape, num_classes)
    init_weights(model, seed)
    return model


def init_weights(model: nn.Module, seed: int) -> None:
    """The paper's initialisation: Gaussian Glorot weights (Kaiming for ResNets), zero biases,
    batch and layer norms as the identity; the transformer's class token and positions drawn
    N(0, 0.02²). Every random number comes from ``seed``."""
    kaiming = isinstance(model, ResNet)
    g = generator("init", seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Linear, nn.Conv2d)):
                if kaiming:
                    nn.init.kaiming_normal_(module.weight, generator=g)
                else:
                    nn.init.xavier_normal_(module.weight, generator=g)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, (nn.BatchNorm2d, nn.LayerNorm)):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        if isinstance(model, ViT):
            nn.init.normal_(model.cls, std=0.02, generator=g)
            nn.init.normal_(model.pos, std=0.02, generator=g)


def prunable_layers(model: nn.Module) -> dict[str, str]:
    """Weight names to their kind: ``conv``, ``fc`` or ``output`` (the last linear layer), or the
    kinds a model names itself (``prunable_kinds``, the transformer's).

    Only weights are pruned; biases, as in the paper, are not.
    """
    if hasattr(model, "prunable_kinds"):
        return model.prunable_kinds()
    kinds: dict[str, str] = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            kinds[f"{name}.weight"] = "conv"
        elif isinstance(module, nn.Linear):
            kinds[f"{name}.weight"] = "fc"
    last_linear = [n for n, k in kinds.items() if k == "fc"][-1]
    kinds[last_linear] = "output"
    return kinds


def count_parameters(model: nn.Module) -> dict[str, int]:
    """Total parameters, and how many of them are prunable weights."""
    prunable = set(prunable_layers(model))
    params = dict(model.named_parameters())
    return {
        "total": sum(p.numel() for p in params.values()),
        "prunable": sum(params[n].numel() for n in prunable),
    }
