"""Many networks of one architecture trained as one: the seeds and arms of IMP rounds in one step.

A GPU given one LeNet-300-100 and a batch of 60 is idle most of the time: every one of the
step's few dozen small kernels costs a launch, and the launches are the step. Stacking N
networks' parameters along a new first dimension (``torch.func.stack_module_state``) and
mapping the network over it (``torch.vmap`` of ``torch.func.functional_call``) makes every
layer one batched kernel for all N (a batched matrix product; a grouped convolution), so a
step costs what one network's step costs until the chip is busy. On CUDA the whole step
(gather of each network's batch, forward, backward, masking, optimiser step) is captured once
as a CUDA graph and replayed, so the launches are paid once in all.

Each network keeps what makes it itself: its mask (a stacked 0/1 tensor), its batches (row
``i`` of the stacked batch is drawn by its own seed's ``BatchOrder``) and its optimiser state.
One fused optimiser over the stacked parameters is N optimisers: Adam's and SGD's updates are
elementwise, so row ``i`` of a stacked moment is network ``i``'s moment. The sum of the N
losses has as gradient in row ``i`` the gradient of network ``i``'s own loss.

The arithmetic is the same as one network's, but not in the same order: a batched product
adds up in other blocks than a single one, so a stacked network ends where it ends trained
alone to float rounding (about 1e-7 after a step of LeNet-300-100), not bit for bit. Over many
steps such differences grow as those between 1 and 2 CPU threads do (``tests/test_stacked.py``
states the tolerances). On a CPU stacking is slower than the plain loop (measured by
``benchmarks/stacked.py``): the CPU is busy with arithmetic already, and batched products run
it less efficiently. ``choose_engine`` picks stacking where it pays.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state

from lthkit.settings import ConfigError

ENGINES = ("auto", "stacked", "loop")

EVAL_ELEMENTS = {"cuda": 2 ** 28, "cpu": 2 ** 25}
"""How many activation values an evaluation chunk of all N networks may hold at once (1 GiB on
CUDA, 128 MiB elsewhere, in float32): the chunk's images are as many as fit."""


@dataclass(frozen=True)
class Engine:
    """How a training call trains its networks: ``stacked`` (with ``graph``: captured as a CUDA
    graph) or ``loop``, and why, in words for the run's log."""

    name: str
    graph: bool
    why: str

    def describe(self) -> str:
        if self.name == "loop":
            return f"training in the plain loop, one network after another in each step ({self.why})"
        graph = ", captured as a CUDA graph" if self.graph else ""
        return f"training the networks of each step stacked into one computation{graph} ({self.why})"


def why_not_stacked(models: list[nn.Module], augment: bool) -> str | None:
    """Why these networks cannot be trained stacked, or None when they can."""
    first = models[0]
    shapes = [(n, p.shape, p.requires_grad) for n, p in first.named_parameters()]
    if any(type(m) is not type(first) or [(n, p.shape, p.requires_grad) for n, p in m.named_parameters()] != shapes
           for m in models[1:]):
        return "the networks differ in architecture"
    if any(True for _ in first.buffers()):
        return "batch norm's running statistics change as it trains"
    if any(hasattr(m, "parametrizations") for m in first.modules()):
        return "parametrized weights (supermasks) are not stacked"
    if augment:
        return "augmentation draws each batch on the CPU"
    return None


def choose_engine(engine: str, models: list[nn.Module], device: torch.device, augment: bool) -> Engine:
    """``auto``: the plain loop everywhere for now: on the CPU stacking was measured slower
    (benchmarks/stacked.py); on CUDA, where one small network leaves the chip idle, the stacked
    engine and its CUDA graph are written to PyTorch's recipe but have not yet run on a GPU, so
    ``auto`` waits for them to pass there (``benchmarks/gpu_checks.sh``); on MPS nothing was measured.
    ``stacked`` and ``loop`` force one; ``stacked`` is refused, with the reason, for networks it cannot stack."""
    if engine not in ENGINES:
        raise ConfigError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    reason = why_not_stacked(models, augment)
    graph = device.type == "cuda"
    if engine == "stacked":
        if reason:
            raise ConfigError(f"these networks cannot be trained stacked: {reason}; use engine 'loop' or 'auto'")
        return Engine("stacked", graph, "asked for")
    if engine == "loop":
        return Engine("loop", False, "asked for")
    if reason:
        return Engine("loop", False, reason)
    if device.type == "cuda":
        return Engine("loop", False, "the stacked engine has not yet run on a GPU; engine 'stacked' asks for it")
    if device.type == "cpu":
        return Engine("loop", False, "stacking is slower on a CPU, measured by benchmarks/stacked.py")
    return Engine("loop", False, f"stacking is not measured on {device.type}")


def activation_size(model: nn.Module, example: torch.Tensor) -> int:
    """Values every module's output holds for one input: what one image costs an evaluation."""
    sizes: list[int] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: sizes.append(out.numel()))
             for m in model.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            model(example[:1])
    finally:
        for h in hooks:
            h.remove()
    return max(1, sum(sizes))


class StackedNetworks:
    """N networks of one architecture as stacked parameters, trained and measured together.

    ``step`` trains all N one step, network ``i`` on rows ``batches[seeds[i]]`` of the training
    set; ``measure`` gives each network's (loss, accuracy) on a split; ``network_state`` and
    ``load_network_state`` hand out and take back one network's weights and optimiser state (the
    same form ``lthkit.train``'s loop uses, so a run may resume on either); ``write_back`` copies
    the trained weights into the networks passed in.
    """

    def __init__(self, models: list[nn.Module], masks: list, x: torch.Tensor, y: torch.Tensor,
                 seeds: list[int], make_optimizer, *, graph: bool):
        self.models, self.seeds, self.x, self.y = models, list(seeds), x, y
        self.device = x.device
        for model in models:
            model.to(self.device)
        self.params, self.buffers = stack_module_state(models)  # new tensors; the buffers are none (why_not_stacked)
        self.names = [n for n, _ in models[0].named_parameters()]
        self.base = copy.deepcopy(models[0]).to("meta")
        masked = sorted({n for m in masks if m is not None for n in m})
        self.masks = {n: torch.stack([(m[n] if m is not None and n in m else torch.ones(self.params[n].shape[1:]))
                                      .to(self.device, self.params[n].dtype) for m in masks]) for n in masked}
        with torch.no_grad():
            for n, m in self.masks.items():
                self.params[n].mul_(m)
        self.trainable = [p for p in self.params.values() if p.requires_grad]
        self.graph = graph
        # On CUDA the optimiser is the graph-safe one (its step count on the GPU, the learning rate a tensor the
        # step reads), captured or not, so that eager and captured training run the same arithmetic.
        capturable = self.device.type == "cuda"
        self.optimizer = make_optimizer(self.trainable, capturable=capturable)
        self.lr = torch.full((), self.optimizer.param_groups[0]["lr"], device=self.device) if capturable else None
        if capturable:
            for group in self.optimizer.param_groups:
                group["lr"] = self.lr
        self.loss = torch.vmap(self._loss)
        self.logits = torch.vmap(self._logits, in_dims=(0, 0, None))
        per_image = activation_size(models[0], x[:1])
        self.eval_chunk = max(1, EVAL_ELEMENTS.get(self.device.type, EVAL_ELEMENTS["cpu"]) // (len(models) * per_image))
        self.graphs: dict[torch.Size, tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]] = {}

    def __len__(self) -> int:
        return len(self.models)

    def _logits(self, params, buffers, x):
        return functional_call(self.base, (params, buffers), (x,))

    def _loss(self, params, buffers, x, y):
        return F.cross_entropy(self._logits(params, buffers, x), y)

    def _train_step(self, idx: torch.Tensor) -> torch.Tensor:
        """One step of every network on rows ``idx[i]``; the N losses."""
        losses = self.loss(self.params, self.buffers, self.x[idx], self.y[idx])
        losses.sum().backward()
        with torch.no_grad():
            for n, m in self.masks.items():
                self.params[n].grad.mul_(m)
        self.optimizer.step()
        with torch.no_grad():
            for n, m in self.masks.items():
                self.params[n].mul_(m)
        return losses.detach()

    def step(self, batches: dict[int, torch.Tensor], lr: float | None = None, iteration: int = 0) -> torch.Tensor:
        """Train every network one step on its seed's batch (``lr``: this step's learning rate,
        None to keep the optimiser's; ``iteration`` is the loop's, unused: no augmentation); the N
        training losses, valid until the next step (on CUDA a graph's output, overwritten by it)."""
        idx = torch.stack([batches[s] for s in self.seeds])
        if lr is not None and self.lr is not None:
            self.lr.fill_(lr)
        elif lr is not None:
            for group in self.optimizer.param_groups:
                group["lr"] = lr
        if self.graph and idx.shape not in self.graphs:
            try:
                self.graphs[idx.shape] = self._capture(idx)
            except RuntimeError as err:
                warnings.warn(f"capturing the training step as a CUDA graph failed ({err}); training goes on "
                              f"stacked without a graph", RuntimeWarning, stacklevel=2)
                self.graph = False
        if not self.graph:
            self.optimizer.zero_grad(set_to_none=True)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*capturable=True.*")
                return self._train_step(idx)
        graph, static_idx, losses = self.graphs[idx.shape]
        static_idx.copy_(idx)
        graph.replay()
        return losses

    def _capture(self, idx: torch.Tensor):
        """The step captured as a CUDA graph for batches shaped like ``idx`` (PyTorch's
        whole-network capture: warm-up steps on a side stream, then capture), in a memory pool
        of its own (an epoch's last, smaller batch gets a second graph). The warm-up steps'
        effects are undone, so capturing changes nothing the networks compute."""
        saved = self._saved_state()
        try:
            static_idx = idx.clone()
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream), warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*capturable=True.*")
                for _ in range(3):
                    self.optimizer.zero_grad(set_to_none=True)
                    self._train_step(static_idx)
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            self.optimizer.zero_grad(set_to_none=True)
            with torch.cuda.graph(graph):
                losses = self._train_step(static_idx)
        finally:
            self._restore_state(saved)
        return graph, static_idx, losses

    def _saved_state(self) -> tuple[list[torch.Tensor], dict]:
        with torch.no_grad():
            params = [p.detach().clone() for p in self.trainable]
            state = {id(p): {k: v.clone() for k, v in self.optimizer.state[p].items()} for p in self.trainable}
        return params, state

    @torch.no_grad()
    def _restore_state(self, saved) -> None:
        """Values back as they were, in the same tensors (a captured graph holds their addresses);
        optimiser state made by the warm-up (none before the first step) back to zero, which is
        what a first step starts from."""
        params, state = saved
        for p, v in zip(self.trainable, params):
            p.copy_(v)
        for p in self.trainable:
            before = state[id(p)]
            for k, t in self.optimizer.state[p].items():
                if k in before:
                    t.copy_(before[k])
                else:
                    t.zero_()

    @torch.no_grad()
    def measure(self, split, batch_size: int = 5000) -> tuple[list[float], list[float]]:
        """Each network's (mean cross-entropy loss, accuracy) on ``split``."""
        n = len(split)
        loss = torch.zeros(len(self), device=self.device)
        correct = torch.zeros(len(self), device=self.device, dtype=torch.long)
        chunk = min(batch_size, self.eval_chunk)
        for start in range(0, n, chunk):
            x, y = split.x[start:start + chunk], split.y[start:start + chunk]
            logits = self.logits(self.params, self.buffers, x)
            loss += F.cross_entropy(logits.flatten(0, 1), y.repeat(len(self)), reduction="none").view(len(self), -1).sum(1)
            correct += (logits.argmax(-1) == y).sum(1)
        return (loss / n).tolist(), (correct.double() / n).tolist()

    def weights(self, i: int) -> dict[str, torch.Tensor]:
        """Network ``i``'s state dict (copies)."""
        with torch.no_grad():
            return {n: self.params[n][i].detach().clone() for n in self.names}

    def network_state(self, i: int) -> dict:
        """Network ``i``'s weights and optimiser state, by parameter name."""
        opt = {}
        for n in self.names:
            p = self.params[n]
            if p.requires_grad and self.optimizer.state[p]:
                opt[n] = {k: (v[i] if v.dim() > 0 else v).detach().clone() for k, v in self.optimizer.state[p].items()}
        return {"model": self.weights(i), "optimizer": opt}

    @torch.no_grad()
    def load_network_state(self, i: int, state: dict) -> None:
        """Take back what ``network_state(i)`` handed out (before the first step only)."""
        if self.graphs:
            raise RuntimeError("network states are loaded before the first step")
        for n in self.names:
            self.params[n][i].copy_(state["model"][n])
            saved = state["optimizer"].get(n)
            if saved is None:
                continue
            p = self.params[n]
            mine = self.optimizer.state[p]
            for k, v in saved.items():
                v = v.to(p.device)
                if v.dim() > 0:
                    mine.setdefault(k, torch.zeros_like(p))[i].copy_(v)
                elif k in mine and not torch.equal(mine[k], v):
                    raise ValueError(f"the networks to resume stand at different optimiser steps ({k} of {n}): "
                                     f"resume networks checkpointed together")
                else:
                    mine[k] = v.clone()

    @torch.no_grad()
    def write_back(self) -> None:
        """Copy each network's trained weights into the network passed in."""
        for i, model in enumerate(self.models):
            model.load_state_dict(self.weights(i))

