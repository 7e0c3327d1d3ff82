"""What a ticket saves once shipped: bytes on disk and milliseconds per batch, measured.

A mask makes a network neither smaller nor faster: the zeros are stored and multiplied like any
other number. What turns sparsity into savings is a storage format that skips the zeros
(``lthkit.export``'s bitmask or CSR, or a general-purpose compressor) and a kernel that skips
them (``torch.sparse`` CSR matrix products, ``SparseLinear``). Whether the kernel wins depends on
the sparsity, the layer's size and the batch: ``latency`` measures it with
``torch.utils.benchmark``, PyTorch's own timer (warm-up, enough repetitions, the median).
"""

from __future__ import annotations

import lzma
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn
from torch.utils import benchmark

from lthkit.export import compact_layer, saved_bytes
from lthkit.masks import Mask


def sizes(model: nn.Module, mask: Mask) -> dict[str, int]:
    """Bytes of ``model`` (pruned weights zero) stored four ways.

    Each is the size of a ``torch.save`` file, so they compare: ``dense``, the float32 state dict;
    ``masked``, the same plus the mask as ``torch.bool``, what a masked network carries; ``compact``,
    each pruned layer in ``lthkit.export``'s smallest form (what ``lthkit export`` writes, less its
    header); ``dense_lzma``, the dense file compressed with LZMA, which finds the zeros itself.
    """
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    dense = saved_bytes(state)
    masked = saved_bytes({**state, **{f"{n}_mask": m.bool().cpu() for n, m in mask.items()}})
    compact = saved_bytes({n: (compact_layer(v, mask[n]) if n in mask else v) for n, v in state.items()})
    return {"dense": len(dense), "masked": len(masked), "compact": len(compact),
            "dense_lzma": len(lzma.compress(dense, preset=6))}


class SparseLinear(nn.Module):
    """A linear layer whose weight is a ``torch.sparse`` CSR matrix: the product skips the zeros."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta")
            self.register_buffer("weight", linear.weight.detach().to_sparse_csr())
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1])
        out = (self.weight @ flat.T).T
        if self.bias is not None:
            out = out + self.bias
        return out.reshape(*x.shape[:-1], -1)


def with_sparse_kernels(model: nn.Module, mask: Mask) -> nn.Module:
    """A copy of ``model`` (pruned weights zero) whose pruned linear layers multiply as CSR.

    Convolutions stay dense: PyTorch has no sparse convolution kernel for the CPU.
    """
    import copy

    sparse = copy.deepcopy(model).eval()
    modules = dict(sparse.named_modules())
    for name in mask:
        parent, _, child = name.removesuffix(".weight").rpartition(".")
        layer = modules[name.removesuffix(".weight")]
        if isinstance(layer, nn.Linear):
            setattr(modules[parent] if parent else sparse, child, SparseLinear(layer))
    return sparse


def latency(model: nn.Module, example: torch.Tensor, *, threads: int | None = None, min_run_time: float = 0.5
            ) -> benchmark.Measurement:
    """``torch.utils.benchmark``'s measurement of one forward pass of ``model`` on ``example``
    (no gradients), on ``threads`` CPU threads (default: PyTorch's current number)."""
    timer = benchmark.Timer("with torch.no_grad(): model(x)", globals={"model": model.eval(), "x": example, "torch": torch},
                            num_threads=threads or torch.get_num_threads(), label="latency",
                            sub_label=f"batch {len(example)}")
    return timer.blocked_autorange(min_run_time=min_run_time)


def onnx_model(model: nn.Module, input_shape: tuple[int, ...], folder: str | Path | None = None,
               threads: int | None = None) -> nn.Module:
    """``model`` exported to ONNX (``lthkit.export.write_onnx``) and run by onnxruntime, called like a module."""
    from lthkit.export import OnnxModule, write_onnx

    if folder is not None:
        write_onnx(model, input_shape, Path(folder) / "model.onnx")
        return OnnxModule(Path(folder) / "model.onnx", threads)
    with tempfile.TemporaryDirectory(prefix="lthkit-onnx-") as scratch:  # the session keeps the graph in memory
        write_onnx(model, input_shape, Path(scratch) / "model.onnx")
        return OnnxModule(Path(scratch) / "model.onnx", threads)
