"""Shipping a ticket: a plain network with no masks or hooks, stored compactly.

A masked network still stores (and multiplies) every zero. ``save_compact`` writes each pruned
layer in the smallest of three forms, and every other tensor as it is:

- ``bitmask``: one bit per weight (packed 8 to the byte) and the kept values, 32-bit each:
  n/8 + 4·kept bytes;
- ``csr``: compressed sparse rows of the layer's weights seen as a matrix (out, in·k·k), with
  32-bit column indices and row pointers: 4·kept + 4·kept + 4·(rows + 1) bytes, smaller than a
  bitmask once fewer than about 1 weight in 32 is kept;
- ``dense``: the float32 values as they are, 4·n bytes, where neither saves anything (a layer
  hardly pruned).

``load_compact`` rebuilds the ordinary ``torch.nn.Module`` from the registry, bit for bit.
``export_run`` does it for a round of a saved IMP run (the trained weights, or the rewound
ticket), or writes ONNX with PyTorch's exporter (``torch.onnx.export``, one self-contained file,
any batch size; a dense graph: ONNX runtimes multiply the zeros too), and reports what it wrote;
``lthkit export`` is the same from the command line.
"""

from __future__ import annotations

import io
import math
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lthkit import files
from lthkit.data import dataset_info, load_dataset
from lthkit.masks import Mask
from lthkit.models import build_model
from lthkit.run_folder import RunFolder

FORMATS = ("pt", "onnx")
COMPACT_VERSION = 1


def bitmask_bytes(size: int, kept: int) -> int:
    return math.ceil(size / 8) + 4 * kept


def csr_bytes(rows: int, kept: int) -> int:
    return 8 * kept + 4 * (rows + 1)


def bitmask_layer(weight: torch.Tensor, keep: torch.Tensor) -> dict:
    """A pruned layer as one bit per weight (``numpy.packbits`` of the flattened mask, first
    weight in the highest bit) and the kept values in row-major order, float32."""
    bits = torch.from_numpy(np.packbits(keep.flatten().numpy()))
    return {"form": "bitmask", "shape": list(weight.shape), "bits": bits, "values": weight[keep].float().clone()}


def csr_layer(weight: torch.Tensor, keep: torch.Tensor) -> dict:
    """A pruned layer as compressed sparse rows of its (out, in·k·k) matrix, 32-bit indices."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta")
        csr = (weight * keep).reshape(weight.shape[0], -1).to_sparse_csr()
    return {"form": "csr", "shape": list(weight.shape), "crow": csr.crow_indices().to(torch.int32),
            "col": csr.col_indices().to(torch.int32), "values": csr.values().float().clone()}


def compact_layer(weight: torch.Tensor, mask: torch.Tensor) -> dict:
    """One pruned layer in the smallest of the three forms (see the module's docstring)."""
    weight, keep = weight.detach().cpu().float(), mask.detach().cpu().bool()
    if bool((weight[~keep] != 0).any()):
        raise ValueError("pruned weights are not zero: apply the mask before storing the layer compactly")
    kept, rows = int(keep.sum()), weight.shape[0]
    if 4 * weight.numel() <= min(csr_bytes(rows, kept), bitmask_bytes(weight.numel(), kept)):
        return {"form": "dense", "shape": list(weight.shape), "values": weight.clone()}
    if csr_bytes(rows, kept) < bitmask_bytes(weight.numel(), kept):
        return csr_layer(weight, keep)
    return bitmask_layer(weight, keep)


def expand_layer(stored: dict) -> torch.Tensor:
    """The dense weight of ``compact_layer``'s output, pruned weights zero."""
    shape, n = stored["shape"], math.prod(stored["shape"])
    if stored["form"] == "dense":
        return stored["values"].reshape(shape)
    if stored["form"] == "csr":
        csr = torch.sparse_csr_tensor(stored["crow"].long(), stored["col"].long(), stored["values"],
                                      (shape[0], n // shape[0]), check_invariants=True)
        return csr.to_dense().reshape(shape)
    keep = torch.from_numpy(np.unpackbits(stored["bits"].numpy(), count=n).astype(bool))
    dense = torch.zeros(n, dtype=stored["values"].dtype)
    dense[keep] = stored["values"]
    return dense.reshape(shape)


def compact_bytes(stored: dict) -> int:
    """Bytes of the arrays a compact layer holds (the file adds a little framing)."""
    return sum(v.numel() * v.element_size() for v in stored.values() if isinstance(v, torch.Tensor))


def save_compact(model: nn.Module, mask: Mask, path: str | Path, *, model_name: str,
                 input_shape: tuple[int, ...], num_classes: int) -> dict:
    """Write ``model`` (pruned weights already zero) with ``mask``'s layers compact; returns the layers' forms."""
    state = model.state_dict()
    tensors = {name: (compact_layer(t, mask[name]) if name in mask else t.detach().cpu().clone())
               for name, t in state.items()}
    files.save_torch(path, {"lthkit_compact": COMPACT_VERSION, "model": model_name, "input_shape": list(input_shape),
                            "num_classes": num_classes, "tensors": tensors})
    return {name: t["form"] for name, t in tensors.items() if isinstance(t, dict)}


def load_compact(path: str | Path) -> nn.Module:
    """The plain network ``save_compact`` wrote: the registry's model with every weight dense again."""
    blob = files.load_torch(path)
    if blob.get("lthkit_compact") != COMPACT_VERSION:
        raise ValueError(f"{path} is not a compact ticket written by lthkit export (format {COMPACT_VERSION})")
    model = build_model(blob["model"], tuple(blob["input_shape"]), blob["num_classes"])
    model.load_state_dict({name: (expand_layer(t) if isinstance(t, dict) else t) for name, t in blob["tensors"].items()})
    return model.eval()


def saved_bytes(obj) -> bytes:
    """What ``torch.save`` writes for ``obj``: sizes of files, compared with files."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def export_run(run_dir: str | Path, r: int, out: str | Path, *, fmt: str = "pt", rewound: bool = False,
               measure: bool = True, data=None) -> dict:
    """Write round ``r`` of the run in ``run_dir`` to ``out`` as a plain network and report it.

    The trained weights by default; ``rewound=True`` writes the ticket as its round started
    training (``load_ticket``). With ``measure`` the network read back from the file is measured
    on the test set (``data``, or the run's dataset loaded here).
    """
    from lthkit.imp import load_ticket, load_trained
    from lthkit.train import evaluate

    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    folder = RunFolder(run_dir)
    if not folder.results.exists():
        raise FileNotFoundError(f"{run_dir} holds no run (no results.json): give the folder of an lthkit imp run")
    if not folder.round(r).exists():
        done = sorted(int(p.stem.split("_")[1]) for p in Path(run_dir).glob("round_*.pt"))
        raise FileNotFoundError(f"round {r} of {run_dir} has no saved ticket; saved rounds: {done or 'none'}")
    config = files.read_json(folder.results)["config"]
    info = dataset_info(config["dataset"])
    ticket = load_ticket(run_dir, r)
    model = ticket.to_model() if rewound else load_trained(run_dir, r)
    ticket.mask.apply_(model)
    model.eval()
    out = Path(out)
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder: give a file to write, such as {out / f'round_{r:02d}.{fmt}'}")
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {"run": str(run_dir), "round": r, "weights": "rewound" if rewound else "trained", "format": fmt,
              "model": config["model"], "weights_remaining": ticket.mask.weights_remaining(),
              "prunable_weights": ticket.mask.size(), "kept_weights": ticket.mask.alive(),
              "dense_bytes": len(saved_bytes(model.state_dict()))}
    if fmt == "pt":
        report["layers"] = save_compact(model, ticket.mask, out, model_name=config["model"],
                                        input_shape=info.input_shape, num_classes=info.num_classes)
        written = load_compact(out)
    else:
        write_onnx(model, info.input_shape, out)
        written = None
    report["bytes"] = out.stat().st_size
    if measure:
        data = data if data is not None else load_dataset(config["dataset"])
        if written is None:
            written = OnnxModule(out)
        report["test_accuracy"] = evaluate(written.to(data.device), data.test)[1]
    return report


def write_onnx(model: nn.Module, input_shape: tuple[int, ...], path: str | Path) -> None:
    """``model`` as one self-contained ONNX file with any batch size, by PyTorch's exporter (which
    writes by name, so into a scratch folder first, then atomically to ``path``)."""
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        made = Path(scratch) / "model.onnx"
        torch.onnx.export(model.eval(), (torch.zeros(2, *input_shape),), str(made), input_names=["images"],
                          output_names=["logits"], dynamic_shapes=({0: torch.export.Dim("batch")},), dynamo=True,
                          external_data=False, verbose=False)
        files.write_bytes(path, made.read_bytes())


class OnnxModule(nn.Module):
    """An ONNX file run by onnxruntime on the CPU, called like a module; ``threads`` caps its
    threads (default: PyTorch's current number, so that timings compare)."""

    def __init__(self, path: str | Path, threads: int | None = None):
        super().__init__()
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.session.run(None, {"images": x.detach().cpu().float().numpy()})[0]
        return torch.from_numpy(out).to(x.device)
