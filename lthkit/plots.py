"""One figure style for the whole course.

Each arm keeps its colour in every notebook (the ticket blue, ``reinit`` orange, ``random``
green, the dense network grey), axes carry units, and weights remaining run on the paper's
log axis from 100% down to the right. Every function draws onto an ``Axes`` it is given or
makes, and returns it, so notebooks can compose figures.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from lthkit.results import ArmResult, Results

COLORS = {"ticket": "#1f77b4", "reinit": "#ff7f0e", "random": "#2ca02c", "dense": "#7f7f7f",
          "one-shot": "#9467bd", "reference": "#bbbbbb"}
LABELS = {"ticket": "winning ticket (rewound)", "reinit": "same mask, random re-init",
          "random": "random mask", "dense": "dense network"}
WEIGHT_TICKS = [100, 51.3, 21.1, 10.8, 5.6, 3.6, 1.8, 1.0, 0.5, 0.2, 0.1]


def use_style() -> None:
    """The course's matplotlib defaults: readable sizes, light grid, no top or right spines."""
    plt.rcParams.update({
        "figure.figsize": (6.4, 4.0), "figure.dpi": 100, "axes.grid": True, "grid.alpha": 0.3,
        "axes.spines.top": False, "axes.spines.right": False, "font.size": 10, "legend.frameon": False,
        "savefig.bbox": "tight",
    })


def _axes(ax: Axes | None) -> Axes:
    if ax is None:
        use_style()
        _, ax = plt.subplots()
    return ax


def weights_axis(ax: Axes, smallest: float = 1.0) -> Axes:
    """Percent of weights remaining on a log axis, 100% at the left, as in the paper's figures.

    The axis reaches down to ``smallest`` or to the sparsest point already drawn, whichever is lower.
    """
    drawn = [min(line.get_xdata()) for line in ax.get_lines() if len(line.get_xdata())]
    smallest = min([smallest, *drawn])
    ax.set_xscale("log")
    ticks = [t for t in WEIGHT_TICKS if t >= smallest * 0.99]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlim(105, smallest * 0.85)
    ax.set_xlabel("weights remaining (%)")
    return ax


def plot_vs_weights(results: Results, key: str = "early_stop_test_accuracy", ax: Axes | None = None,
                    arms: Sequence[str] | None = None, alpha: float = 1.0, label_suffix: str = "",
                    linestyle: str = "-") -> Axes:
    """One line per arm: ``key`` (an ``ArmResult`` field) against weights remaining.

    Controls start at round 1; each control's line is joined to the dense network at 100%.
    """
    ax = _axes(ax)
    dense = results.rounds[0].arms["ticket"]
    for arm in arms or results.arms():
        xs, ys = results.series(arm, key)
        if arm != "ticket":
            xs, ys = [1.0] + xs, [getattr(dense, key)] + ys
        ys = np.array(ys, dtype=float) * (100 if "accuracy" in key else 1)
        ax.plot(np.array(xs) * 100, ys, linestyle, marker="o", ms=3, color=COLORS.get(arm), alpha=alpha,
                label=LABELS.get(arm, arm) + label_suffix)
    weights_axis(ax, min(r.weights_remaining for r in results.rounds) * 100)
    ax.set_ylabel(_KEY_LABELS.get(key, key))
    ax.legend()
    return ax


def plot_band_vs_weights(runs: Sequence[Results], arm: str, key: str = "early_stop_test_accuracy",
                         ax: Axes | None = None, label: str | None = None) -> Axes:
    """Mean and min-max band of ``key`` over several runs (seeds), against weights remaining.

    As in ``plot_vs_weights``, a control's line starts at its run's dense network at 100%."""
    ax = _axes(ax)
    series = [r.series(arm, key) for r in runs]
    if arm != "ticket":
        dense = [getattr(r.rounds[0].arms["ticket"], key) for r in runs]
        series = [([1.0] + xs, [d] + ys) for (xs, ys), d in zip(series, dense)]
    xs = np.array(series[0][0]) * 100
    ys = np.array([s[1] for s in series], dtype=float) * (100 if "accuracy" in key else 1)
    color = COLORS.get(arm)
    ax.plot(xs, ys.mean(0), color=color, lw=1.5, marker="s", ms=3,
            label=label or f"{LABELS.get(arm, arm)} ({len(runs)} seeds)")
    ax.fill_between(xs, ys.min(0), ys.max(0), color=color, alpha=0.15, lw=0)
    weights_axis(ax, xs.min())
    ax.set_ylabel(_KEY_LABELS.get(key, key))
    ax.legend()
    return ax


def plot_curve(result: ArmResult, key: str = "test_accuracy", ax: Axes | None = None,
               label: str | None = None, color: str | None = None, mark_early_stop: bool = True) -> Axes:
    """A learning curve: ``key`` of each evaluation against training iteration."""
    ax = _axes(ax)
    its = [p.iteration for p in result.curve]
    vals = np.array([getattr(p, key) for p in result.curve], dtype=float) * (100 if "accuracy" in key else 1)
    (line,) = ax.plot(its, vals, color=color, label=label)
    if mark_early_stop:
        i = its.index(result.early_stop_iteration)
        ax.plot([its[i]], [vals[i]], "o", color=line.get_color(), ms=6, mfc="white")
    ax.set_xlabel("training iteration")
    ax.set_ylabel(_KEY_LABELS.get(key, key))
    if label:
        ax.legend()
    return ax


def plot_error_along_line(errors: Sequence[float], ax: Axes | None = None, label: str | None = None,
                          **kwargs) -> Axes:
    """Test error (%) of the networks on the straight line between two trained copies, from the
    first (0) to the second (1): a bump in the middle is instability."""
    ax = _axes(ax)
    alphas = np.linspace(0, 1, len(errors))
    ax.plot(alphas, np.array(errors, dtype=float) * 100, marker="o", ms=3, label=label, **kwargs)
    ax.set_xlabel("position on the line between the two copies")
    ax.set_ylabel("test error (%)")
    if label:
        ax.legend()
    return ax


def plot_weight_histogram(weights: np.ndarray, ax: Axes | None = None, bins: int = 80, **kwargs) -> Axes:
    """Histogram of the surviving (non-zero) weights of one layer."""
    ax = _axes(ax)
    alive = weights[weights != 0]
    ax.hist(alive, bins=bins, color=kwargs.pop("color", COLORS["ticket"]), **kwargs)
    ax.set_xlabel("weight value")
    ax.set_ylabel("number of weights")
    return ax


def show_mask_images(masks: np.ndarray, axes: Sequence[Axes], side: int = 28) -> None:
    """Each first-layer unit's mask as a ``side`` x ``side`` image: white pixels are still seen."""
    for ax, m in zip(axes, masks):
        ax.imshow(m.reshape(side, side), cmap="gray", vmin=0, vmax=1)
        ax.set_xticks([]), ax.set_yticks([])
        ax.grid(False)
        ax.set_title(f"{m.mean():.0%} kept", fontsize=8)


_KEY_LABELS = {
    "early_stop_test_accuracy": "test accuracy at early stop (%)",
    "test_accuracy": "test accuracy (%)",
    "val_accuracy": "validation accuracy (%)",
    "early_stop_iteration": "early-stop iteration",
    "val_loss": "validation loss",
    "train_loss": "training loss",
}
