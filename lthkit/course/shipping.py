"""Notebook 10's tickets and its table: each way of shipping a ticket, measured on this machine.

``ticket_run`` finds a network's ticket at the sparsity its paper reports, in the budget's rounds;
``shipping_forms`` builds the ways to ship it (``lthkit.ship``'s pieces) beside the dense network
and channel-pruned networks trained as long; ``measure`` gives each its test accuracy, its bytes
and its CPU latency at each batch size, and ``print_table`` shows them relative to the dense network.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

PAPER_ROUNDS = {"lenet300": 15, "conv2": 11, "resnet20": 8}
"""Rounds of each network's paper rates whose sparsity notebook 10 ships: 15 leave LeNet-300-100
3.5% of its fully-connected weights, 8 leave ResNet-20 16.8% (the sparsities of Frankle et al.
2020's Table 1), 11 leave Conv-2 about a tenth (Frankle & Carbin: tickets at 10-20% or less)."""


def compressed_rates(rates: dict[str, float], paper_rounds: int, rounds: int) -> dict[str, float]:
    """Per-kind rates that reach in ``rounds`` rounds what ``rates`` reach in ``paper_rounds``:
    the same sparsity in fewer, larger steps (a budget's; the paper's slower pruning finds
    better tickets: Frankle & Carbin find iterative pruning reaches smaller tickets than one shot)."""
    return {kind: 1 - (1 - rate) ** (paper_rounds / rounds) for kind, rate in rates.items()}


def ticket_config(settings: dict, model: str):
    """The IMP config of ``model``'s ticket: its paper's training for the budget's length, its
    paper's rates compressed into the budget's rounds for it, late rewinding for ResNet-20."""
    from lthkit.config import make_config
    from lthkit.course import experiment_config

    rounds = dict(zip(settings["models"], settings["ticket_rounds"]))[model]
    lenet = model == "lenet300"
    knobs = dict(settings, rounds=rounds, iterations=settings["iterations" if lenet else "cifar_iterations"],
                 eval_images=None if lenet else settings["eval_images"])
    paper = make_config(model=model).prune_rates
    rewind = settings["rewind_iteration"] if model == "resnet20" else 0
    return experiment_config(knobs, model=model, prune_rates=compressed_rates(paper, PAPER_ROUNDS[model], rounds),
                             rewind_iteration=rewind)


@dataclass
class Shipped:
    """One way to ship a network: the module that computes (``None`` for a file that loads back as
    another row's network), the bytes of its file, and, once measured, its test accuracy and
    milliseconds per forward pass by batch size (the best of the repeats' medians, and all of them)."""

    name: str
    model: nn.Module | None
    bytes: int
    note: str = ""
    accuracy: float | None = None
    ms: dict[int, float] = field(default_factory=dict)
    repeats: dict[int, list[float]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"name": self.name, "bytes": self.bytes, "note": self.note, "accuracy": self.accuracy,
                "ms": self.ms, "repeats": self.repeats}


def shipping_forms(dense: nn.Module, ticket: nn.Module, mask, input_shape: tuple[int, ...], folder: str | Path,
                   *, model_name: str, channel_pruned: dict[float, nn.Module] | None = None,
                   threads: int | None = None) -> list[Shipped]:
    """The dense network and its ticket (pruned weights zero) shipped every way ``lthkit.ship``
    knows, files written under ``folder``; ``channel_pruned`` maps kept fractions to trained
    channel-pruned networks."""
    from lthkit.export import OnnxModule, load_compact, save_compact, saved_bytes, write_onnx
    from lthkit.ship import int8_dynamic, onnx_int8, sizes, with_sparse_kernels

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    dense, ticket = dense.cpu().eval(), ticket.cpu().eval()
    size = sizes(ticket, mask)
    save_compact(ticket, mask, folder / "ticket.pt", model_name=model_name, input_shape=input_shape,
                 num_classes=ticket.state_dict()[next(reversed(ticket.state_dict()))].shape[0])
    write_onnx(ticket, input_shape, folder / "ticket.onnx")
    state_bytes = lambda m: len(saved_bytes(m.state_dict()))  # noqa: E731
    sparse, int8 = with_sparse_kernels(ticket, mask), int8_dynamic(ticket)
    forms = [
        Shipped("dense network", dense, state_bytes(dense), "trained without pruning"),
        Shipped("ticket, masked", ticket, size["masked"], "zeros stored and multiplied, mask beside"),
        Shipped("ticket, compact file", load_compact(folder / "ticket.pt"), (folder / "ticket.pt").stat().st_size,
                "bitmask/CSR file, read back dense"),
        Shipped("ticket, LZMA file", None, size["dense_lzma"], "the zeros compressed away; loads back dense"),
        Shipped("ticket, CSR kernels", sparse, state_bytes(sparse), "torch.sparse CSR linear layers"),
        Shipped("ticket, onnxruntime", OnnxModule(folder / "ticket.onnx", threads),
                (folder / "ticket.onnx").stat().st_size, "ONNX graph, zeros multiplied"),
        Shipped("ticket, int8 (PyTorch)", int8, state_bytes(int8), "linear layers int8, dynamic"),
        Shipped("ticket, int8 (onnxruntime)", onnx_int8(ticket, input_shape, folder / "int8", threads),
                (folder / "int8" / "model-int8.onnx").stat().st_size, "every layer int8, dynamic"),
    ]
    for keep, network in sorted((channel_pruned or {}).items(), reverse=True):
        forms.append(Shipped(f"channels kept {keep:.0%}", network.cpu().eval(), state_bytes(network),
                             f"{sum(p.numel() for p in network.parameters()):,} parameters, dense"))
    return forms


def measure(forms: list[Shipped], test, input_shape: tuple[int, ...], *, batches: tuple[int, ...] = (1, 64),
            repeats: int = 3, min_run_time: float = 0.2, threads: int | None = None) -> list[Shipped]:
    """Each form's accuracy on ``test`` (a ``Split``, moved to the CPU) and its latency with
    ``lthkit.ship.latency``: ``repeats`` medians per batch size, the best kept, since this
    machine's speed drifts between seconds (the spread is kept too)."""
    from lthkit.data import Split
    from lthkit.ship import latency
    from lthkit.train import evaluate

    test = Split(test.x.cpu(), test.y.cpu())
    for form in forms:
        if form.model is None:
            continue
        form.accuracy = evaluate(form.model, test)[1]
        for batch in batches:
            x = torch.randn(batch, *input_shape, generator=torch.Generator().manual_seed(batch))
            form.repeats[batch] = [latency(form.model, x, threads=threads, min_run_time=min_run_time).median * 1e3
                                   for _ in range(repeats)]
            form.ms[batch] = min(form.repeats[batch])
    return forms


def print_table(title: str, forms: list[Shipped]) -> None:
    """The forms beside the dense network (the first): accuracy, bytes, and milliseconds per batch
    with the speed-up against dense (above 1× is faster)."""
    dense = forms[0]
    batches = list(dense.ms)
    print(title)
    print(f"{'':28s} {'accuracy':>8s} {'bytes':>11s} {'× dense':>8s}"
          + "".join(f"{f'batch {b} ms':>13s} {'speed-up':>8s}" for b in batches))
    for form in forms:
        accuracy = f"{form.accuracy:.2%}" if form.accuracy is not None else "   —"
        cells = "".join(f"{form.ms[b]:13.3f} {dense.ms[b] / form.ms[b]:7.2f}×" if b in form.ms else f"{'—':>13s} {'':8s}"
                        for b in batches)
        print(f"{form.name:28s} {accuracy:>8s} {form.bytes:11,} {form.bytes / dense.bytes:8.3f}{cells}")
    print()


def _speedups(dense: Shipped, form: Shipped) -> str:
    return " and ".join(f"{dense.ms[b] / form.ms[b]:.2f}× at batch {b}" for b in dense.ms if b in form.ms)


def readout(forms: list[Shipped], images: int) -> str:
    """What one network's table shows, in sentences from the learner's run: each form's bytes and
    speed-ups against the dense network (the first form), the ticket's (the second) accuracy against
    the int8 and channel-pruned forms with the 95% interval of a difference of two accuracies on
    ``images`` test images, and how far this machine's timings drifted between repeats."""
    from lthkit.course.readouts import difference_interval

    by_name = {form.name: form for form in forms}
    dense, masked = forms[0], by_name["ticket, masked"]
    lines = [f"masked: {masked.bytes / dense.bytes:.2f}× the dense network's bytes, {_speedups(dense, masked)}",
             "files: the compact one " + f"{by_name['ticket, compact file'].bytes / dense.bytes:.1%}, the LZMA one "
             f"{by_name['ticket, LZMA file'].bytes / dense.bytes:.1%} of the dense network's bytes"]
    for name in ("ticket, CSR kernels", "ticket, onnxruntime", "ticket, int8 (PyTorch)", "ticket, int8 (onnxruntime)"):
        form = by_name[name]
        lines.append(f"{name.removeprefix('ticket, ')}: {_speedups(dense, form)}"
                     + (f", {form.bytes / dense.bytes:.1%} of the bytes" if "int8" in name else ""))
    int8 = [by_name[n] for n in ("ticket, int8 (PyTorch)", "ticket, int8 (onnxruntime)")]
    moved = max(abs(f.accuracy - masked.accuracy) for f in int8)
    lines.append(f"int8 moved accuracy by at most {100 * moved:.2f} points (the 95% interval of a difference on "
                 f"{images:,} images: ±{difference_interval(masked.accuracy, masked.accuracy, images):.1f})")
    for form in forms:
        if form.name.startswith("channels kept"):
            gap = 100 * (form.accuracy - masked.accuracy)
            beyond = abs(gap) > difference_interval(form.accuracy, masked.accuracy, images)
            lines.append(f"{form.name}: {_speedups(dense, form)}, {form.bytes / dense.bytes:.1%} of the bytes; "
                         f"{form.accuracy:.2%} against the ticket's {masked.accuracy:.2%} ({gap:+.2f} points, "
                         + ("beyond" if beyond else "within") + " the interval)")
    if _repeated(forms):
        lines.append(f"the repeats of one timing differed by up to {_drift(forms):.0%} on this machine: a speed-up that "
                     "close to 1× is no change")
    return "\n".join(f"- {line}." for line in lines)


def _repeated(forms: list[Shipped]) -> bool:
    return any(len(r) > 1 for form in forms for r in form.repeats.values())


def _drift(forms: list[Shipped]) -> float:
    """How far one timing's repeats differed on this machine, at most, in one table."""
    return max((max(r) / min(r) - 1 for form in forms for r in form.repeats.values() if len(r) > 1), default=0.0)


def _span(values: dict[str, float], unit: str) -> str:
    fmt = (lambda v: f"{v:.1%}") if unit == "%" else (lambda v: f"{v:.2f}×")
    each = ", ".join(f"{network} {fmt(v)}" for network, v in values.items())
    return f"{fmt(min(values.values()))} to {fmt(max(values.values()))} ({each})"


def _named(forms: list[Shipped], name: str) -> Shipped | None:
    return next((form for form in forms if form.name == name), None)


def _faster_everywhere(name: str, forms: list[Shipped]) -> bool:
    dense, form = forms[0], _named(forms, name)
    return form is not None and bool(form.ms) and all(
        dense.ms[b] / form.ms[b] > 1 + _drift(forms) for b in dense.ms)


def across_networks(tables: dict[str, list[Shipped]]) -> str:
    """What held in every network's table of the learner's run: the compact files' share of the dense
    networks' bytes, onnxruntime's speed-up at batch 1, and the forms that ran faster than their dense
    network (the first form) at every batch size in every table, by more than that table's drift
    between repeats."""
    compact = {n: _named(forms, "ticket, compact file").bytes / forms[0].bytes for n, forms in tables.items()}
    onnx = {n: forms[0].ms[1] / _named(forms, "ticket, onnxruntime").ms[1] for n, forms in tables.items()}
    names = [f.name for f in next(iter(tables.values()))[1:]]
    faster = [name for name in names if all(_faster_everywhere(name, forms) for forms in tables.values())]
    lines = [f"the compact files take {_span(compact, '%')} of their dense networks' bytes",
             f"onnxruntime ran the masked tickets at {_span(onnx, '×')} the dense speed at batch 1",
             f"faster than the dense network at every batch size in all {len(tables)} networks, by more than the "
             "drift of their repeats: " + (", ".join(faster) if faster else "no form")
             + ("" if all(_repeated(forms) for forms in tables.values()) else
                " (each timing was measured once, so the drift is unknown: take this line with care)")]
    return "\n".join(f"- {line}." for line in lines)


def crossovers(densities: tuple[float, ...], speedups: dict[str, list[float]]) -> str:
    """For each layer's CSR speed-ups over ``densities`` (fractions kept): the largest fraction kept from
    which CSR is faster than dense at every sparser density, if any."""
    lines = []
    for label, values in speedups.items():
        by_density = sorted(zip(densities, values))
        faster = None
        for density, speedup in by_density:
            if speedup <= 1:
                break
            faster = density
        lines.append(f"{label}: " + (f"CSR is faster than dense from {faster:.0%} of the weights kept down, "
                                     f"{by_density[0][1]:.2f}× at {by_density[0][0]:.0%}" if faster else
                                     f"CSR is not faster than dense even keeping {by_density[0][0]:.0%} "
                                     f"({by_density[0][1]:.2f}×)"))
    return "\n".join(f"- {line}." for line in lines)


def trained_channel_pruned(dense: nn.Module, keep: float, config, data, folder: str | Path) -> nn.Module:
    """``dense`` with ``keep`` of each hidden layer's channels (``lthkit.ship.channel_pruned``),
    trained again as long as the ticket was, with the ticket's training; saved in ``folder`` and
    read back from there when the cell runs again (the same pruning, then the trained weights)."""
    from lthkit.ship import channel_pruned
    from lthkit.train import train

    import hashlib

    training = hashlib.sha256(repr(config.training).encode()).hexdigest()[:8]  # another training, another file
    path = Path(folder) / f"channels-{keep:g}-{training}.pt"
    network = channel_pruned(dense, tuple(data.info.input_shape), keep).to(data.device)
    if path.exists():
        network.load_state_dict(torch.load(path, map_location=data.device, weights_only=True))
        return network.eval()
    train(network, data, config.training, progress=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(network.state_dict(), path)
    return network.eval()


def table_split(config, images: int | None):
    """The first ``images`` test images of ``config``'s dataset (all with ``None``), on the CPU:
    what the table measures every form on."""
    from lthkit.data import Split, load_dataset

    test = load_dataset(config.dataset, device="cpu").test
    n = images or len(test)
    return Split(test.x[:n], test.y[:n])
