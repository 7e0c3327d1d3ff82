"""What a ticket saves once shipped: bytes on disk and milliseconds per batch, measured.

A mask makes a network neither smaller nor faster: the zeros are stored and multiplied like any
other number. What turns sparsity into savings is a storage format that skips the zeros
(``lthkit.export``'s bitmask or CSR, or a general-purpose compressor) and a kernel that skips
them (``torch.sparse`` CSR matrix products, ``SparseLinear``). Whether the kernel wins depends on
the sparsity, the layer's size and the batch: ``latency`` measures it with
``torch.utils.benchmark``, PyTorch's own timer (warm-up, enough repetitions, the median), and
``sparse_speedup`` maps where it does. Against them stand what every runtime already speeds up: a
smaller dense network (``channel_pruned``, whole channels removed with Torch-Pruning), int8
arithmetic (``int8_dynamic``, ``onnx_int8``) and a leaner runtime (``onnx_model``, onnxruntime).
"""

from __future__ import annotations

import copy
import logging
import lzma
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

_cpp_extension = logging.getLogger("torch.utils.cpp_extension")
_level = _cpp_extension.level
_cpp_extension.setLevel(logging.ERROR)  # importing benchmark warns of a missing CUDA runtime where a CUDA folder exists
from torch.utils import benchmark  # noqa: E402
_cpp_extension.setLevel(_level)

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
    sparse = copy.deepcopy(model).eval()
    modules = dict(sparse.named_modules())
    for name in mask:
        parent, _, child = name.removesuffix(".weight").rpartition(".")
        layer = modules[name.removesuffix(".weight")]
        if isinstance(layer, nn.Linear):
            setattr(modules[parent] if parent else sparse, child, SparseLinear(layer))
    return sparse


def channel_pruned(model: nn.Module, input_shape: tuple[int, ...], keep: float) -> nn.Module:
    """A copy of ``model`` keeping ``keep`` of the channels of every hidden layer (the units, of a
    fully-connected one): a smaller dense network, as fast as its size on any runtime.

    The channels with the smallest L1 norm go (Li et al. 2017), chosen and removed by
    Torch-Pruning, which follows the dependencies between layers: a channel goes from the layer
    that makes it and from every layer that reads it, the shortcut of a residual block included.
    The output layer keeps its outputs. Train the copy again (fine-tune) before measuring it.
    """
    if not 0 < keep <= 1:
        raise ValueError(f"keep is the fraction of channels kept, in (0, 1], got {keep!r}")
    try:
        import torch_pruning
    except ImportError as e:
        raise ImportError("channel pruning uses Torch-Pruning: pip install -e '.[course]'") from e
    pruned = copy.deepcopy(model).eval()
    output = [m for m in pruned.modules() if isinstance(m, nn.Linear)][-1]
    example = torch.zeros(1, *input_shape, device=next(pruned.parameters()).device)
    l1 = torch_pruning.importance.GroupMagnitudeImportance(p=1)
    pruner = torch_pruning.pruner.MetaPruner(pruned, example, importance=l1, pruning_ratio=1 - keep,
                                             ignored_layers=[output])
    pruner.step()
    return pruned


def int8_dynamic(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose linear layers compute in int8 (weights quantised once, each
    batch's activations on the fly): PyTorch's dynamic quantisation, fbgemm's kernels on x86.
    Convolutions stay float32: dynamic quantisation has no convolution.

    ``torch.ao.quantization`` warns that it moves to torchao; torchao's ``quantize_`` targets
    ``torch.compile`` and GPUs, and in eager mode on a CPU it measured several times slower than
    float32 here, so the eager API, still shipped and working, is the one used.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", "torch.quantize_per_tensor")
        return torch.ao.quantization.quantize_dynamic(copy.deepcopy(model).cpu().eval(), {nn.Linear},
                                                      dtype=torch.qint8)


def onnx_int8(model: nn.Module, input_shape: tuple[int, ...], folder: str | Path, threads: int | None = None
              ) -> nn.Module:
    """``model`` as ONNX (``folder/model.onnx``) quantised to int8 by onnxruntime's dynamic
    quantisation (``folder/model-int8.onnx``, after its recommended pre-processing), run by
    onnxruntime. Unlike PyTorch's, it quantises convolutions too."""
    from onnxruntime.quantization import QuantType, quant_pre_process, quantize_dynamic

    from lthkit.export import OnnxModule, write_onnx

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_onnx(model, input_shape, folder / "model.onnx")
    quant_pre_process(str(folder / "model.onnx"), str(folder / "model-pre.onnx"))
    root = logging.getLogger()  # quantize_dynamic advises pre-processing through the root logger even after it
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        quantize_dynamic(folder / "model-pre.onnx", folder / "model-int8.onnx", weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)
    return OnnxModule(folder / "model-int8.onnx", threads)


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


def sparse_speedup(in_features: int, out_features: int, density: float, batch: int, *, threads: int | None = None,
                   min_run_time: float = 0.2, seed: int = 0) -> float:
    """How many times faster one ``in_features`` → ``out_features`` linear layer keeping ``density``
    of its weights (at random) runs as ``torch.sparse`` CSR than dense, at ``batch``: above 1 the
    sparse kernel wins. Each median is ``latency``'s."""
    g = torch.Generator().manual_seed(seed)
    layer = nn.Linear(in_features, out_features)
    with torch.no_grad():
        layer.weight.mul_(torch.rand(layer.weight.shape, generator=g) < density)
    x = torch.randn(batch, in_features, generator=g)
    dense = latency(layer, x, threads=threads, min_run_time=min_run_time).median
    return dense / latency(SparseLinear(layer), x, threads=threads, min_run_time=min_run_time).median


def semi_structured_speedup(in_features: int = 10240, out_features: int = 3072, batch: int = 3072, *,
                            min_run_time: float = 0.5) -> float:
    """How many times faster a float16 linear layer pruned 2:4 (the 2 largest of every 4
    consecutive weights kept) runs with ``torch.sparse.to_sparse_semi_structured`` than dense, on
    the GPU: NVIDIA's sparse tensor cores, the one pattern of sparsity with hardware behind it.
    The default shape is PyTorch's tutorial's. Raises ``RuntimeError`` saying why where it cannot
    run (no CUDA device, or one older than compute capability 8.0)."""
    if not torch.cuda.is_available():
        raise RuntimeError("2:4 semi-structured sparsity runs on NVIDIA GPUs (compute capability 8.0 or newer, "
                           "Ampere on); this machine has no CUDA device")
    if torch.cuda.get_device_capability() < (8, 0):
        raise RuntimeError(f"2:4 semi-structured sparsity needs compute capability 8.0 or newer; this GPU "
                           f"({torch.cuda.get_device_name()}) has {torch.cuda.get_device_capability()}")
    from torch.sparse import to_sparse_semi_structured

    g = torch.Generator(device="cuda").manual_seed(0)
    layer = nn.Linear(in_features, out_features).half().cuda().eval()
    groups = layer.weight.detach().reshape(-1, 4)
    keep = torch.zeros_like(groups, dtype=torch.bool).scatter_(1, groups.abs().topk(2, dim=1).indices, True)
    layer.weight = nn.Parameter(layer.weight.detach() * keep.reshape(layer.weight.shape), requires_grad=False)
    x = torch.randn(batch, in_features, generator=g, device="cuda", dtype=torch.float16)
    dense = latency(layer, x, min_run_time=min_run_time).median
    expected = layer(x)
    layer.weight = nn.Parameter(to_sparse_semi_structured(layer.weight), requires_grad=False)
    if not torch.allclose(layer(x), expected, rtol=1e-2, atol=1e-2):
        raise RuntimeError("the semi-structured layer's outputs differ from the dense layer's")
    return dense / latency(layer, x, min_run_time=min_run_time).median
