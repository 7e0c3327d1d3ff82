"""One figure style for the whole course, readable without colour.

- **One colour and one marker per arm**, the same in every notebook (``COLORS``, ``MARKERS``, or
  both at once with ``style(arm)``), from the Okabe-Ito palette (its eight colours and a neutral
  grey), which readers with any common colour-vision deficiency tell apart; the marker tells the
  arms apart in greyscale too. The ticket is blue circles, ``reinit`` vermillion squares,
  ``random`` green triangles, the dense network black diamonds, one-shot pruning purple, the
  reference runs grey; notebook 05's networks and notebook 06's rewinding variants have theirs.
- **Weights remaining** run on the paper's log axis from 100% at the left, with a tick at every
  point drawn (its label thinned out where labels would touch; the first and last kept).
- **Bands** (``plot_band_vs_weights``) shade the lowest to highest value over seeds around the
  mean, and the legend says so ("shaded band: min–max over 3 seeds").
- **Baselines**: accuracy plots draw the dense network's value as a dotted line ("dense
  network"), early-stop-iteration plots the training length as a dashed line, since an early
  stop sitting on it only means the validation loss was still falling when training ended.
  Both are line *collections*, so ``ax.get_lines()`` holds only the data lines.
- **Legends sit outside the axes** (below by default, or to the right), never over a curve; the
  style saves and shows figures with a tight bounding box, which takes them in.
- **Learning curves** tell quantities apart by line style and marker as well as colour: training
  loss dashed with triangles, validation loss solid with circles.

Every function draws onto an ``Axes`` it is given or makes, and returns it, so notebooks can
compose figures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
from cycler import cycler
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.legend import Legend
from matplotlib.patches import Patch
from matplotlib.textpath import TextToPath
from matplotlib.ticker import FixedLocator, FuncFormatter, Locator, LogLocator, NullFormatter
from matplotlib.transforms import offset_copy

from lthkit.results import ArmResult, Results

OKABE_ITO = {"black": "#000000", "orange": "#E69F00", "sky blue": "#56B4E9", "bluish green": "#009E73",
             "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00", "reddish purple": "#CC79A7"}
"""Okabe & Ito's colour-blind-safe palette (2008); the course adds one neutral, ``GREY``."""
GREY = "#999999"

_STYLES = {  # arm: (colour, marker); no two arms share both
    "ticket": (OKABE_ITO["blue"], "o"),
    "reinit": (OKABE_ITO["vermillion"], "s"),
    "random": (OKABE_ITO["bluish green"], "^"),
    "dense": (OKABE_ITO["black"], "D"),
    "one-shot": (OKABE_ITO["reddish purple"], "v"),
    "reference": (GREY, "X"),
    # notebook 06: the ticket rewound to iteration 0 (against late rewinding, drawn as "ticket"),
    # and the other ways to retrain after pruning (weight rewinding is the ticket)
    "rewind-0": (OKABE_ITO["sky blue"], "P"),
    "lr-rewind": (OKABE_ITO["orange"], "p"),
    "finetune": (OKABE_ITO["reddish purple"], "h"),
    # notebook 05's networks
    "conv2": (OKABE_ITO["sky blue"], "o"),
    "conv4": (OKABE_ITO["orange"], "s"),
    "conv6": (OKABE_ITO["reddish purple"], "^"),
    # notebook 07: masks found at initialisation (IMP's ticket is "ticket"), and the inverted check
    "magnitude": (OKABE_ITO["black"], "v"),
    "snip": (OKABE_ITO["orange"], "v"),
    "grasp": (OKABE_ITO["reddish purple"], "P"),
    "synflow": (OKABE_ITO["sky blue"], "s"),
    "inverted": (OKABE_ITO["blue"], "X"),
    # notebook 08: Zhou et al.'s sign control, and masks learned over frozen weights
    "signs": (OKABE_ITO["orange"], "^"),
    "sampled": (OKABE_ITO["reddish purple"], "X"),
    "top_k": (OKABE_ITO["sky blue"], "h"),
    # notebook 11: the target's own ticket beside a ticket moved from another run (drawn as "ticket")
    "own": (OKABE_ITO["orange"], "D"),
    # notebook 12: trained sparse from the start (the static random mask is drawn as "random")
    "set": (OKABE_ITO["orange"], "h"),
    "rigl": (OKABE_ITO["reddish purple"], "D"),
    "rigl-long": (OKABE_ITO["vermillion"], "p"),
}
COLORS = {arm: color for arm, (color, _) in _STYLES.items()}
MARKERS = {arm: marker for arm, (_, marker) in _STYLES.items()}
LABELS = {"ticket": "winning ticket (rewound)", "reinit": "same mask, random re-init",
          "random": "random mask", "dense": "dense network", "one-shot": "one-shot pruning, rewound",
          "reference": "reference runs", "rewind-0": "winning ticket, rewound to iteration 0",
          "lr-rewind": "learning-rate rewinding", "finetune": "fine-tuning",
          "conv2": "Conv-2", "conv4": "Conv-4", "conv6": "Conv-6",
          "magnitude": "magnitude at initialisation", "snip": "SNIP", "grasp": "GraSP", "synflow": "SynFlow",
          "inverted": "scores inverted", "signs": "same mask, fresh magnitudes, original signs",
          "sampled": "supermask (sampled, Zhou et al.)", "top_k": "supermask (edge-popup)",
          "own": "the target's own ticket", "set": "SET", "rigl": "RigL", "rigl-long": "RigL, trained as long as IMP's rounds"}
CURVE_STYLES = {"train_loss": ("--", "v"), "val_loss": ("-", "o"), "val_accuracy": ("-.", "s"),
                "test_accuracy": ("-", "o")}
"""Line style and marker of each learning-curve quantity, so that two drawn together differ without colour."""
WEIGHT_TICKS = [100, 51.3, 21.1, 10.8, 5.6, 3.6, 1.8, 1.0, 0.5, 0.2, 0.1]
"""Ticks of a weights axis with nothing drawn on it yet."""
BAND_ALPHA = 0.3
_CYCLE = [OKABE_ITO[c] for c in ("sky blue", "orange", "reddish purple", "blue", "vermillion", "bluish green",
                                 "black", "yellow")]
_CYCLE_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "h"]
_GID = "lthkit-"  # gid prefix of the baselines and bands this module draws


def style(arm: str, index: int | None = None) -> dict:
    """``color`` and ``marker`` of ``arm``, for ``ax.plot(..., **style(arm))``. An unknown name
    gets the ``index``-th colour and marker of the course's cycle, or nothing (the axes' cycle)."""
    if arm in _STYLES:
        color, marker = _STYLES[arm]
        return {"color": color, "marker": marker}
    if index is not None:
        return {"color": _CYCLE[index % len(_CYCLE)], "marker": _CYCLE_MARKERS[index % len(_CYCLE_MARKERS)]}
    return {}


def use_style() -> None:
    """The course's matplotlib defaults: readable sizes, light grid, no top or right spines,
    colour-blind-safe colours with markers for any line drawn without a style, and a tight
    bounding box when saving so that legends outside the axes are kept."""
    plt.rcParams.update({
        "figure.figsize": (6.4, 4.0), "figure.dpi": 100, "axes.grid": True, "grid.alpha": 0.3,
        "axes.spines.top": False, "axes.spines.right": False, "font.size": 10, "legend.frameon": False,
        "legend.fontsize": 9, "savefig.bbox": "tight",
        "axes.prop_cycle": cycler(color=_CYCLE) + cycler(marker=_CYCLE_MARKERS),
    })


def _axes(ax: Axes | None) -> Axes:
    if ax is None:
        use_style()
        _, ax = plt.subplots()
    return ax


def _scale(key: str) -> float:
    return 100 if "accuracy" in key else 1


# --- legends ---------------------------------------------------------------------------------

def _text_width(text: str, size: float) -> float:
    """Width in points of ``text`` at font ``size`` points, without a renderer."""
    return TextToPath().get_text_width_height_descent(text, FontProperties(size=size), ismath=False)[0]


def _legend_entries(axes: Sequence[Axes]) -> tuple[list, list[str]]:
    """Labelled artists of ``axes``, one per label; a band's mean line comes with its band, and one
    grey entry says what the shading is."""
    handles, labels, seeds = [], [], []
    for ax in axes:
        pairs = list(zip(*ax.get_legend_handles_labels()))  # data first, then the baselines
        pairs.sort(key=lambda pair: str(pair[0].get_gid() or "").startswith(_GID))
        for handle, label in pairs:
            if label in labels:
                continue
            band = getattr(handle, "lthkit_band", None)
            if band is not None:
                seeds.append(band.lthkit_seeds)
                handle = (Patch(facecolor=band.get_facecolor()[0], lw=0), handle)
            handles.append(handle)
            labels.append(label)
    if seeds:
        n = f"{seeds[0]} seeds" if len(set(seeds)) == 1 else "the seeds"
        handles.append(Patch(facecolor=GREY, alpha=BAND_ALPHA, lw=0))
        labels.append(f"shaded band: min–max over {n}")
    return handles, labels


def _columns(labels: Sequence[str], width: float, fontsize: float) -> int:
    """The most legend columns that fit in ``width`` points."""
    entry = max(_text_width(label, fontsize) for label in labels) + 2.8 * fontsize  # handle and pad
    gap = 2.0 * fontsize
    return max(1, min(len(labels), int((width + gap) // (entry + gap))))


def _below_axes(ax: Axes) -> float:
    """Points from the bottom of ``ax`` to below its tick labels and x label."""
    rc = mpl.rcParams
    tick = FontProperties(size=rc["xtick.labelsize"]).get_size_in_points()
    label = FontProperties(size=rc["axes.labelsize"]).get_size_in_points()
    points = rc["xtick.major.size"] + rc["xtick.major.pad"] + 1.3 * tick + 4
    if ax.get_xlabel():
        points += rc["axes.labelpad"] + 1.3 * label
    return points


def place_legend(ax: Axes, where: str = "below", **kwargs) -> Legend | None:
    """The legend of ``ax`` outside it, ``below`` (as many columns as fit under the axes) or to the
    ``right``, so that it never hides a curve. Bands show as their shading behind their line.
    A ``loc`` in ``kwargs`` places it as ``ax.legend`` would instead."""
    handles, labels = _legend_entries([ax])
    if not handles:
        return None
    if "loc" not in kwargs:
        if where == "right":
            kwargs.update(loc="upper left", bbox_to_anchor=(1.02, 1), bbox_transform=ax.transAxes, borderaxespad=0)
        elif where == "below":
            size = FontProperties(size=kwargs.get("fontsize", mpl.rcParams["legend.fontsize"])).get_size_in_points()
            width = ax.get_position().width * ax.figure.get_figwidth() * 72
            kwargs.setdefault("ncols", _columns(labels, width, size))
            kwargs.update(loc="upper center", bbox_to_anchor=(0.5, 0), borderaxespad=0,
                          bbox_transform=offset_copy(ax.transAxes, fig=ax.figure, y=-_below_axes(ax), units="points"))
        else:
            raise ValueError(f"where={where!r}: place a legend 'below' or to the 'right' of the axes")
    return ax.legend(handles, labels, **kwargs)


def figure_legend(fig: Figure, **kwargs) -> Legend | None:
    """One legend below all the axes of ``fig`` in place of theirs, each label once: for grids of
    panels that show the same arms."""
    handles, labels = _legend_entries(fig.axes)
    if not handles:
        return None
    for ax in fig.axes:
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    size = FontProperties(size=kwargs.get("fontsize", mpl.rcParams["legend.fontsize"])).get_size_in_points()
    kwargs.setdefault("ncols", _columns(labels, fig.get_figwidth() * 72 * 0.9, size))
    bottom = min(ax.get_position().y0 for ax in fig.axes)
    below = max(_below_axes(ax) for ax in fig.axes)
    kwargs.update(loc="upper center", bbox_to_anchor=(0.5, bottom), borderaxespad=0,
                  bbox_transform=offset_copy(fig.transFigure, fig=fig, y=-below, units="points"))
    return fig.legend(handles, labels, **kwargs)


# --- baselines -------------------------------------------------------------------------------

def _has(ax: Axes, kind: str) -> bool:
    return any(c.get_gid() == _GID + kind for c in ax.collections)


def _hline(ax: Axes, y: float, kind: str, label: str, zorder: float = 1.5, **kwargs) -> LineCollection | None:
    """A horizontal line across ``ax`` at ``y``, once per ``kind`` and value."""
    for c in ax.collections:
        if c.get_gid() == _GID + kind and np.isclose(c.lthkit_y, y):
            return None
    line = LineCollection([[(0, y), (1, y)]], transform=ax.get_yaxis_transform(), label=label,
                          gid=_GID + kind, zorder=zorder, **kwargs)
    line.lthkit_y = y
    ax.add_collection(line, autolim=False)
    ax.update_datalim([(1.0, y)], updatex=False)
    ax.autoscale_view(scalex=False)
    return line


def dense_line(ax: Axes, value: float, label: str = "dense network", color: str | None = None) -> LineCollection | None:
    """The dense network's ``value`` (already in the plot's units) as a dotted line across ``ax``;
    a second dense network's (another run's) is dash-dotted. Drawn once per value."""
    dashes = "-." if _has(ax, "dense") else ":"
    return _hline(ax, value, "dense", label, colors=color or COLORS["dense"], linestyles=dashes, linewidths=1.5)


def training_length(results: Results) -> int | None:
    """Iterations a training of ``results`` runs to, counted from the start of training: the cap
    on every early-stop iteration. A ticket rewound to iteration k (late rewinding) trains from k
    to this same iteration, so the cap is the same in every round."""
    its = results.config.get("iterations")
    if its:
        return int(its)
    ends = [arm.curve[-1].iteration for r in results.rounds for arm in r.arms.values() if arm.curve]
    return max(ends) if ends else None


def cap_line(ax: Axes, iterations: int, label: str | None = None, color: str = "#555555") -> LineCollection | None:
    """The training length as a dashed line across an early-stop-iteration plot, over the data:
    stops on it are stops at the end of training. Drawn once per value."""
    label = label or f"training length, {iterations:,} iterations (early stop capped here)"
    return _hline(ax, iterations, "cap", label, zorder=2.5, colors=color, linestyles="--", linewidths=1.2)


def _wants(flag: bool | None, default: bool) -> bool:
    return default if flag is None else flag


# --- weights axis ----------------------------------------------------------------------------

def _weights_label(v: float) -> str:
    return f"{v:.3g}"


def _drawn_x(ax: Axes) -> list[float]:
    """Distinct x values of the data lines of ``ax`` (a value within 1% of another counts once)."""
    xs = sorted({float(x) for line in ax.get_lines() if line.get_transform() is ax.transData
                 and not str(line.get_gid() or "").startswith(_GID)
                 for x in np.asarray(line.get_xdata(), dtype=float) if np.isfinite(x) and x > 0}, reverse=True)
    distinct: list[float] = []
    for x in xs:
        if not distinct or abs(np.log10(distinct[-1] / x)) > 0.004:
            distinct.append(x)
    return distinct


class DrawnPointsLocator(Locator):
    """Ticks at the x values drawn on the axes when the figure is drawn. With ``thin``, only as
    many as can be labelled without the labels touching, always keeping the first and the last."""

    def __init__(self, ax: Axes, thin: bool = True):
        self.ax, self.thin = ax, thin

    def __call__(self):
        vmin, vmax = sorted(self.axis.get_view_interval())
        values = [v for v in (_drawn_x(self.ax) or WEIGHT_TICKS) if vmin <= v <= vmax]
        return self._thinned(values) if self.thin else values

    def tick_values(self, vmin, vmax):
        return self()

    def _thinned(self, values: list[float]) -> list[float]:
        if len(values) < 3:
            return values
        size = FontProperties(size=mpl.rcParams["xtick.labelsize"]).get_size_in_points()
        xs = self.ax.transData.transform(np.column_stack([values, np.ones(len(values))]))[:, 0]
        points = xs * 72 / self.ax.figure.dpi
        order = np.argsort(points)
        pos = [points[i] for i in order]
        half = [_text_width(_weights_label(values[i]), size) / 2 for i in order]

        def apart(i: int, j: int) -> bool:
            return abs(pos[j] - pos[i]) >= half[i] + half[j] + 0.6 * size

        keep = [0]
        for j in range(1, len(pos)):
            if apart(keep[-1], j):
                keep.append(j)
        last = len(pos) - 1
        if keep[-1] != last:
            while len(keep) > 1 and not apart(keep[-1], last):
                keep.pop()
            keep.append(last)
        if len(keep) == 2 and not apart(0, last):
            keep = [0]
        return sorted((values[order[i]] for i in keep), reverse=True)


def weights_axis(ax: Axes, smallest: float | None = None, labelled: Sequence[float] | None = None) -> Axes:
    """Percent of weights remaining on a log axis, 100% at the left, as in the paper's figures.

    Labelled ticks sit at the points drawn (thinned where labels would touch), unlabelled ones at
    the rest. A figure that mixes the points of several schedules, whose labels would crowd, labels
    round values instead: ``labelled`` (such as 100, 50, 20, 10, 5, 2), and ticks every point drawn
    unlabelled. The axis reaches down to ``smallest``, if given, or to the sparsest point drawn,
    whichever is lower.
    """
    drawn = _drawn_x(ax)
    lowest = min([v for v in (smallest, *drawn[-1:]) if v is not None] or [1.0])
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator(sorted(labelled, reverse=True)) if labelled else DrawnPointsLocator(ax))
    ax.xaxis.set_minor_locator(DrawnPointsLocator(ax, thin=False))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _weights_label(v)))
    ax.xaxis.set_minor_formatter(NullFormatter())
    major = mpl.rcParams
    ax.tick_params(axis="x", which="minor", length=major["xtick.major.size"], width=major["xtick.major.width"])
    ax.set_xlim(105, lowest * 0.85)
    ax.set_xlabel("weights remaining (%)")
    return ax


# --- figures ---------------------------------------------------------------------------------

def plot_vs_weights(results: Results, key: str = "early_stop_test_accuracy", ax: Axes | None = None,
                    arms: Sequence[str] | None = None, alpha: float = 1.0, label_suffix: str = "",
                    linestyle: str = "-", *, styled_as: str | Mapping[str, str] | None = None,
                    dense: bool | None = None, cap: bool | None = None, legend: str | None = "below",
                    labels: Mapping[str, str] | None = None) -> Axes:
    """One line per arm: ``key`` (an ``ArmResult`` field) against weights remaining.

    Controls start at round 1; each control's line is joined to the dense network at 100%.
    ``styled_as`` draws arms in another arm's colour and marker (one name for all, or per arm).
    ``dense`` draws the dense network's value as a line (default: on accuracy plots; labelled with
    ``label_suffix`` only if another dense network's line is on the axes already); ``cap`` the
    training length (default: on early-stop-iteration plots). ``legend``: ``"below"``,
    ``"right"`` or ``None`` for none; ``labels`` names arms otherwise than ``LABELS`` does.
    """
    ax = _axes(ax)
    scale = _scale(key)
    first = results.rounds[0].arms["ticket"]
    if _wants(dense, "accuracy" in key):
        suffix = label_suffix if _has(ax, "dense") else ""
        dense_line(ax, getattr(first, key) * scale, "dense network" + suffix)
    iterations = training_length(results)
    if _wants(cap, key == "early_stop_iteration") and iterations:
        cap_line(ax, iterations)
    for arm in arms or results.arms():
        xs, ys = results.series(arm, key)
        if arm != "ticket":
            xs, ys = [1.0] + xs, [getattr(first, key)] + ys
        look = styled_as.get(arm, arm) if isinstance(styled_as, Mapping) else styled_as or arm
        ax.plot(np.array(xs) * 100, np.array(ys, dtype=float) * scale, linestyle, ms=5, alpha=alpha,
                label=(labels or {}).get(arm, LABELS.get(arm, arm)) + label_suffix, **style(look))
    weights_axis(ax, min(r.weights_remaining for r in results.rounds) * 100)
    ax.set_ylabel(_KEY_LABELS.get(key, key))
    if legend:
        place_legend(ax, legend)
    return ax


def plot_band_vs_weights(runs: Sequence[Results], arm: str, key: str = "early_stop_test_accuracy",
                         ax: Axes | None = None, label: str | None = None, *, styled_as: str | None = None,
                         linestyle: str = "-", dense: bool | None = None, cap: bool | None = None,
                         legend: str | None = "below") -> Axes:
    """Mean and min-max band of ``key`` over several runs (seeds), against weights remaining.

    As in ``plot_vs_weights``, a control's line starts at its run's dense network at 100%, and
    ``styled_as``, ``dense`` (here the mean over the runs), ``cap`` and ``legend`` work alike; the
    legend shows the band behind the line and says what it spans. The mean line is drawn last and
    the band just before it, so ``ax.get_lines()[-1]`` and ``ax.collections[-1]`` are they."""
    ax = _axes(ax)
    scale = _scale(key)
    look = styled_as or arm
    firsts = [getattr(r.rounds[0].arms["ticket"], key) for r in runs]
    neutral = {"color": COLORS["reference"]} if look == "reference" else {}  # the reference's own baselines
    if _wants(dense, "accuracy" in key):
        dense_line(ax, float(np.mean(firsts)) * scale, f"dense network, mean of {len(runs)} seeds", **neutral)
    if _wants(cap, key == "early_stop_iteration"):
        for iterations in sorted({training_length(r) for r in runs} - {None}):
            cap_line(ax, iterations, **neutral)
    series = [r.series(arm, key) for r in runs]
    if arm != "ticket":
        series = [([1.0] + xs, [d] + ys) for (xs, ys), d in zip(series, firsts)]
    xs = np.array(series[0][0]) * 100
    ys = np.array([s[1] for s in series], dtype=float) * scale
    color = style(look, index=0)["color"]
    band = ax.fill_between(xs, ys.min(0), ys.max(0), color=color, alpha=BAND_ALPHA, lw=0, gid=_GID + "band")
    band.lthkit_seeds = len(runs)
    (line,) = ax.plot(xs, ys.mean(0), linestyle, lw=1.5, ms=5,
                      label=label or f"{LABELS.get(arm, arm)} ({len(runs)} seeds)", **style(look, index=0))
    line.lthkit_band = band
    weights_axis(ax, xs.min())
    ax.set_ylabel(_KEY_LABELS.get(key, key))
    if legend:
        place_legend(ax, legend)
    return ax


def plot_curve(result: ArmResult, key: str = "test_accuracy", ax: Axes | None = None,
               label: str | None = None, color: str | None = None, mark_early_stop: bool = True, *,
               linestyle: str | None = None, marker: str | None = None, legend: str | None = "below") -> Axes:
    """A learning curve: ``key`` of each evaluation against training iteration, in the line style
    and marker of ``CURVE_STYLES[key]`` unless given; a hollow circle marks the early stop."""
    ax = _axes(ax)
    its = [p.iteration for p in result.curve]
    vals = np.array([getattr(p, key) for p in result.curve], dtype=float) * _scale(key)
    default_ls, default_marker = CURVE_STYLES.get(key, ("-", "o"))
    (line,) = ax.plot(its, vals, color=color, label=label, linestyle=linestyle or default_ls,
                      marker=marker or default_marker, ms=4, markevery=max(1, round(len(its) / 12)))
    if mark_early_stop:
        i = its.index(result.early_stop_iteration)
        ax.plot([its[i]], [vals[i]], "o", color=line.get_color(), ms=8, mfc="white", mew=1.5, zorder=3)
    ax.set_xlabel("training iteration")
    ax.set_ylabel(_KEY_LABELS.get(key, key))
    if label and legend:
        place_legend(ax, legend)
    return ax


def plot_error_along_line(errors: Sequence[float], ax: Axes | None = None, label: str | None = None,
                          **kwargs) -> Axes:
    """Test error (%) of the networks on the straight line between two trained copies, from the
    first (0) to the second (1): a bump in the middle is instability. Each line on the axes gets
    the next colour and marker of the course's cycle unless given."""
    ax = _axes(ax)
    alphas = np.linspace(0, 1, len(errors))
    look = style("", index=len(ax.get_lines()))
    kwargs = {**look, "ms": 4, **kwargs}
    ax.plot(alphas, np.array(errors, dtype=float) * 100, label=label, **kwargs)
    ax.set_xlabel("position on the line between the two copies")
    ax.set_ylabel("test error (%)")
    if label:
        place_legend(ax)
    return ax


def plot_instability(lines: dict[int, Sequence[float]], ax: Axes | None = None) -> Axes:
    """Each rewind point's error along the line between its two copies (``lines``: rewind iteration ->
    errors), coloured as the slider colours it (the ticket's colour when stable, the reinit control's when
    not), with the level it must stay under to count as stable, the mean of its ends plus Frankle et
    al.'s 2 points, dotted in the same colour."""
    from lthkit.stability import STABLE_WITHIN, is_stable

    ax = _axes(ax)
    for index, (k, errors) in enumerate(lines.items()):
        stable = is_stable(list(errors))
        color = COLORS["ticket"] if stable else COLORS["reinit"]
        plot_error_along_line(errors, ax=ax, color=color, marker=style("", index=index)["marker"],
                              label=f"copies from iteration {k}: " + ("stable" if stable else "unstable"))
        ax.axhline(100 * ((errors[0] + errors[-1]) / 2 + STABLE_WITHIN), color=color, linestyle=":", lw=1)
    ax.text(0.5, 0.02, f"dotted: the mean of a line's ends + {100 * STABLE_WITHIN:.0f} points (stable below it)",
            transform=ax.transAxes, ha="center", fontsize=8, color=COLORS["reference"])
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


# --- notebook 10: what shipping a ticket saves -----------------------------------------------------

def _plain_log_axis(axis) -> None:
    """Ticks of a log axis at 1, 2 and 5 of each decade, written as plain numbers (0.2, 1, 5)."""
    axis.set_major_locator(LogLocator(subs=(1, 2, 5)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def plot_shipping(forms: Sequence, batch: int, ax: Axes | None = None) -> Axes:
    """Each form of ``lthkit.course.shipping`` that computes, as one point: its file's size against
    its time per forward pass at ``batch``, both relative to the dense network (the first form,
    drawn as the course draws the dense network), on log axes; lower left is smaller and faster.
    Dotted lines mark the dense network's."""
    ax = _axes(ax)
    dense = forms[0]
    for i, form in enumerate(f for f in forms if batch in f.ms):
        cycle = i - 1 + (i > 3)  # the cycle's fourth style, blue diamonds, would pass for the dense network's
        ax.plot([form.bytes / dense.bytes], [form.ms[batch] / dense.ms[batch]], linestyle="none", markersize=8,
                label=form.name, **(style("dense") if form is dense else style(form.name, cycle)))
    ax.axvline(1, color=GREY, linestyle=":", linewidth=1)
    ax.axhline(1, color=GREY, linestyle=":", linewidth=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    _plain_log_axis(ax.xaxis)
    _plain_log_axis(ax.yaxis)
    ax.set_xlabel("file size / dense")
    ax.set_ylabel(f"time at batch {batch} / dense")
    return ax


def plot_speedups(densities: Sequence[float], speedups: Mapping[str, Sequence[float]], ax: Axes | None = None
                  ) -> Axes:
    """Speed-up of ``torch.sparse`` CSR over dense (above 1: faster) against the fraction of weights
    kept, one line per layer, on the paper's reversed log axis; a dashed line at 1."""
    ax = _axes(ax)
    for i, (label, values) in enumerate(speedups.items()):
        ax.plot([100 * d for d in densities], values, label=label, **style(label, i))
    ax.axhline(1, color="#555555", linestyle="--", linewidth=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.invert_xaxis()
    ax.set_xticks([100 * d for d in densities], [f"{100 * d:g}%" for d in densities])
    ax.xaxis.set_minor_formatter(NullFormatter())
    _plain_log_axis(ax.yaxis)
    ax.set_xlabel("weights kept")
    ax.set_ylabel("speed-up of CSR over dense (×)")
    return ax


# --- sweeps -----------------------------------------------------------------------------------------

def plot_sweep(groups: Mapping[tuple[str, str], Sequence[Results]]) -> Figure:
    """One row per setting of a sweep (``lthkit.sweep_results.runs_by_setting``): accuracy at early
    stop and the early-stop iteration against weights remaining, each arm its mean line and its
    band over the seeds; the arms' legend once, below."""
    fig, axes = plt.subplots(len(groups), 2, figsize=(11, 3.6 * len(groups)), squeeze=False)
    for (setting, run), (left, right) in zip(groups, axes):
        runs = groups[(setting, run)]
        arms = [a for a in runs[0].rounds[-1].arms if all(a in r.rounds[-1].arms for r in runs)]
        for arm in arms:
            plot_band_vs_weights(runs, arm, ax=left, legend=None)
            plot_band_vs_weights(runs, arm, key="early_stop_iteration", ax=right, legend=None)
        title = setting if run == "run" else f"{setting} · {run}"
        left.set_title(title or "the sweep", loc="left", fontsize=10)
    fig.tight_layout()
    figure_legend(fig)
    return fig
