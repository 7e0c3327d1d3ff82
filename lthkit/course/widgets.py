"""The course's sliders: a pure function computes what a widget shows, a thin UI draws it.

An error inside an ipywidgets callback does not fail a notebook run, so every callback here
is a pure function (``sparsity_view``, ``round_view``) tested by pytest, and each explorer
exposes its ``slider`` and ``readout`` so a notebook can move the slider and check the text.
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
from torch import nn

from lthkit.data import Splits
from lthkit.masks import Mask, layer_rates, prune_by_magnitude, prune_globally
from lthkit.course.plots import (COLORS, MARKERS, place_legend, plot_curve, plot_error_along_line, plot_vs_weights,
                          plot_weight_histogram, show_mask_images, style, use_style, weights_axis)
from lthkit.results import Results
from lthkit.rewind import Snapshot, rewind_to
from lthkit.stability import STABLE_WITHIN, instability, is_stable
from lthkit.train import evaluate

UNITS_SHOWN = 8


@dataclass
class SparsityView:
    sparsity: float
    test_accuracy: float
    weights_remaining: float
    first_layer_masks: np.ndarray
    first_layer_weights: np.ndarray

    @property
    def readout(self) -> str:
        return (f"sparsity {self.sparsity:.0%}: {self.weights_remaining:.1%} of weights left, "
                f"test accuracy {self.test_accuracy:.2%} (no retraining)")


def one_shot_mask(model: nn.Module, sparsity: float, scope: str = "layerwise") -> Mask:
    """Prune a trained model once to ``sparsity``: every layer alike, or globally across layers."""
    full = Mask.ones_like(model)
    if sparsity <= 0:
        return full
    if scope == "global":
        return prune_globally(model, full, sparsity)
    kinds = {k: sparsity for k in ("conv", "fc", "output")}
    return prune_by_magnitude(model, full, layer_rates(model, kinds))


def sparsity_view(model: nn.Module, data: Splits, sparsity: float, scope: str = "layerwise",
                  units: int = UNITS_SHOWN) -> SparsityView:
    """What pruning the trained ``model`` to ``sparsity`` (no retraining) does; ``model`` is left unchanged."""
    if not 0 <= sparsity < 1:
        raise ValueError(f"sparsity {sparsity!r} is outside [0, 1): 0.9 prunes 90% of the weights")
    keep = Snapshot.of(model)
    mask = one_shot_mask(model, sparsity, scope)
    mask.apply_(model)
    _, accuracy = evaluate(model, data.test)
    first = next(iter(mask))
    weights = dict(model.named_parameters())[first].detach().cpu().numpy().copy()
    rewind_to(model, keep)
    return SparsityView(sparsity, accuracy, mask.weights_remaining(),
                        mask[first][:units].cpu().numpy(), weights)


def _explorer(slider, view_of, draw):
    """Slider, text readout and figure: ``view_of(value)`` computes, ``draw(view)`` plots."""
    import ipywidgets as w

    use_style()
    readout, out = w.Label(), w.Output()

    def redraw(change=None):
        view = view_of(slider.value)
        readout.value = view.readout
        with out:
            out.clear_output(wait=True)
            draw(view)
            plt.show()

    slider.observe(redraw, names="value")
    redraw()
    box = w.VBox([slider, readout, out])
    box.slider, box.readout = slider, readout
    return box


def sparsity_explorer(model: nn.Module, data: Splits, scope: str = "layerwise"):
    """A slider from 0 to 99% sparsity that redraws accuracy, first-layer masks and the weight histogram."""
    import ipywidgets as w

    def draw(view: SparsityView) -> None:
        fig = plt.figure(figsize=(10, 3.2))
        half = UNITS_SHOWN // 2
        grid = fig.add_gridspec(2, half + 3)
        show_mask_images(view.first_layer_masks,
                         [fig.add_subplot(grid[i // half, i % half]) for i in range(UNITS_SHOWN)])
        ax = fig.add_subplot(grid[:, half + 1:])
        plot_weight_histogram(view.first_layer_weights.ravel(), ax=ax)
        ax.set_title("first layer: surviving weights")
        fig.suptitle(view.readout, fontsize=10)

    slider = w.IntSlider(value=0, min=0, max=99, step=1, description="sparsity %", continuous_update=False)
    return _explorer(slider, lambda v: sparsity_view(model, data, v / 100, scope), draw)


@dataclass
class RoundView:
    round: int
    weights_remaining: float
    early_stop_test_accuracy: float
    early_stop_iteration: int
    arms: list[str]

    @property
    def readout(self) -> str:
        return (f"round {self.round}: {self.weights_remaining:.1%} of weights left, ticket reaches "
                f"{self.early_stop_test_accuracy:.2%} test accuracy at early stop (iteration "
                f"{self.early_stop_iteration})")


def round_view(results: Results, r: int) -> RoundView:
    """The facts of round ``r`` that the round slider shows."""
    if not 0 <= r < len(results.rounds):
        raise ValueError(f"round {r} is not in this run: rounds go from 0 to {len(results.rounds) - 1}")
    rnd = results.rounds[r]
    ticket = rnd.arms["ticket"]
    return RoundView(r, rnd.weights_remaining, ticket.early_stop_test_accuracy, ticket.early_stop_iteration,
                     list(rnd.arms))


def round_explorer(results: Results):
    """A slider over IMP rounds: that round's learning curves beside the dense net's, and its place
    on the accuracy-against-weights plot."""
    import ipywidgets as w

    def draw(view: RoundView) -> None:
        fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
        plot_curve(results.rounds[0].arms["ticket"], ax=left, label="dense (round 0)", color=COLORS["dense"],
                   marker=MARKERS["dense"])
        for arm in view.arms:
            plot_curve(results.rounds[view.round].arms[arm], ax=left, color=COLORS.get(arm), marker=MARKERS.get(arm),
                       label=f"{arm}, {view.weights_remaining:.1%} left")
        left.set_ylim(bottom=max(left.get_ylim()[0], 80))
        plot_vs_weights(results, ax=right, arms=["ticket"])
        right.plot([view.weights_remaining * 100], [view.early_stop_test_accuracy * 100], "o", ms=12,
                   mfc="none", color="black")
        fig.suptitle(view.readout, fontsize=10)

    slider = w.IntSlider(value=0, min=0, max=len(results.rounds) - 1, description="round", continuous_update=False)
    return _explorer(slider, lambda r: round_view(results, r), draw)


def first_layer_mask_images(mask: Mask, units: int = UNITS_SHOWN) -> np.ndarray:
    """The first ``units`` rows of the first layer's mask, one flattened image each."""
    return next(iter(mask.values()))[:units].detach().cpu().numpy()



@dataclass
class DepthView:
    round: int
    rows: dict[str, tuple[float, float]]  # model -> (weights remaining, ticket's early-stop test accuracy)

    @property
    def readout(self) -> str:
        return f"round {self.round}: " + "; ".join(
            f"{model} {left:.1%} of weights, {acc:.2%}" for model, (left, acc) in self.rows.items())


def depth_view(runs: dict[str, Results], r: int) -> DepthView:
    """Round ``r`` of each network's run: how many weights are left and what the ticket reaches."""
    last = min(len(run.rounds) for run in runs.values()) - 1
    if not 0 <= r <= last:
        raise ValueError(f"round {r} is not in every run: rounds go from 0 to {last}")
    return DepthView(r, {model: (run.rounds[r].weights_remaining, run.rounds[r].arms["ticket"].early_stop_test_accuracy)
                         for model, run in runs.items()})


def depth_explorer(runs: dict[str, Results]):
    """A slider over IMP rounds for several networks at once (Conv-2, -4, -6): each one's ticket
    against weights remaining, with the chosen round circled."""
    import ipywidgets as w

    looks = {model: style(model, index=i) for i, model in enumerate(runs)}

    def draw(view: DepthView) -> None:
        fig, ax = plt.subplots(figsize=(7, 4))
        for model, run in runs.items():
            xs, ys = run.series("ticket", "early_stop_test_accuracy")
            ax.plot(np.array(xs) * 100, np.array(ys) * 100, "-", ms=5, label=model, **looks[model])
            left, acc = view.rows[model]
            ax.plot([left * 100], [acc * 100], "o", ms=12, mfc="none", color=looks[model]["color"])
        smallest = min(r.weights_remaining for run in runs.values() for r in run.rounds)
        weights_axis(ax, smallest * 100)
        ax.set_ylabel("test accuracy at early stop (%)")
        place_legend(ax)
        fig.suptitle(view.readout, fontsize=9)

    last = min(len(run.rounds) for run in runs.values()) - 1
    slider = w.IntSlider(value=0, min=0, max=last, description="round", continuous_update=False)
    return _explorer(slider, lambda r: depth_view(runs, r), draw)


@dataclass
class InstabilityView:
    rewind_iteration: int
    errors: list[float]
    instability: float
    stable: bool

    @property
    def readout(self) -> str:
        verdict = "stable" if self.stable else "unstable"
        return (f"copies from iteration {self.rewind_iteration}: end errors {self.errors[0]:.1%} and "
                f"{self.errors[-1]:.1%}, the line rises {self.instability:.1%} above them: {verdict} "
                f"(stable within {STABLE_WITHIN:.0%})")


def instability_view(lines: dict[int, list[float]], k: int) -> InstabilityView:
    """The instability analysis of the copies trained from rewind iteration ``k``."""
    if k not in lines:
        raise ValueError(f"no copies were trained from iteration {k}: the rewind points are {sorted(lines)}")
    return InstabilityView(k, list(lines[k]), instability(lines[k]), is_stable(lines[k]))


def instability_explorer(lines: dict[int, list[float]]):
    """A slider over the rewind points: the error along the line between the two copies trained
    from that point, beside the other points' lines in grey."""
    import ipywidgets as w

    def draw(view: InstabilityView) -> None:
        fig, ax = plt.subplots(figsize=(7, 4))
        for k, errors in lines.items():
            if k != view.rewind_iteration:
                plot_error_along_line(errors, ax=ax, color=COLORS["reference"], label=f"from iteration {k}")
        plot_error_along_line(view.errors, ax=ax, color=COLORS["ticket"] if view.stable else COLORS["reinit"],
                              lw=2.5, label=f"from iteration {view.rewind_iteration}")
        fig.suptitle(view.readout, fontsize=9)

    slider = w.SelectionSlider(options=sorted(lines), description="rewind to", continuous_update=False)
    return _explorer(slider, lambda k: instability_view(lines, k), draw)
