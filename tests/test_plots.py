"""The course's figures: one colour-blind-safe colour and marker per arm, bands and baselines that
a reader can see and read in the legend, legends off the curves, ticks where the points are."""

import itertools

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import LineCollection, PolyCollection  # noqa: E402

from lthkit.course import plots  # noqa: E402
from lthkit.course.plots import (COLORS, LABELS, MARKERS, figure_legend, plot_band_vs_weights, plot_curve,  # noqa: E402
                          plot_error_along_line, plot_vs_weights, style, use_style, weights_axis)
from lthkit.results import ArmResult, CurvePoint, Results, RoundResult  # noqa: E402

# Okabe & Ito (2008), "Color Universal Design": the eight colours, and the grey the course adds.
OKABE_ITO = {"#000000", "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7"}
ARMS = ("ticket", "reinit", "random", "dense", "one-shot", "reference")


@pytest.fixture(autouse=True)
def _close_figures():
    use_style()
    yield
    plt.close("all")


def arm(acc: float, stop: int, start: int, iterations: int) -> ArmResult:
    its = sorted({start, iterations} | {i for i in range(0, iterations, 50) if i > start})  # as train() evaluates
    curve = [CurvePoint(i, 2.0 / (1 + i), 1.0 / (1 + i) + (0.5 if i > stop else 0.0), acc, acc) for i in its]
    return ArmResult(acc, stop, acc, curve[its.index(stop)].val_loss, curve)


def make_run(accs: dict[str, list[float]], stops: dict[str, list[int]] | None = None, iterations: int = 300,
             rewind: int = 0, with_iterations: bool = True) -> Results:
    """A hand-built IMP run: round 0 is the dense network (``accs["ticket"][0]``); later rounds
    train every arm in ``accs``; each round keeps 80% of the weights."""
    stops = stops or {a: [iterations] * len(v) for a, v in accs.items()}
    rounds = []
    for r in range(len(accs["ticket"])):
        start = 0 if r == 0 else rewind
        arms = {a: arm(accs[a][r], stops[a][r], start, iterations) for a in accs if r == 0 and a == "ticket" or r > 0}
        rounds.append(RoundResult(r, 0.8 ** r, {}, arms))
    config = {"iterations": iterations if with_iterations else None, "rewind_iteration": rewind}
    return Results(config, rounds)


def zigzag_run(rounds: int = 12) -> Results:
    """Lines that cross the whole axes at every x: any legend inside the axes would cover points."""
    high, low = [0.99, 0.90] * rounds, [0.90, 0.99] * rounds
    return make_run({"ticket": high[:rounds], "reinit": low[:rounds], "random": [0.945] * rounds},
                    {"ticket": [100, 300] * (rounds // 2), "reinit": [300, 100] * (rounds // 2),
                     "random": [200] * rounds})


def baselines(ax, kind: str) -> list[LineCollection]:
    return [c for c in ax.collections if c.get_gid() == f"lthkit-{kind}"]


def display_y(ax, line: LineCollection) -> list[float]:
    """Where a baseline is drawn, read back in data units from its display coordinates."""
    points = line.get_transform().transform(line.get_segments()[0])
    return list(ax.transData.inverted().transform(points)[:, 1])


# --- one colour and one marker per arm ---------------------------------------------------------

def test_every_arm_has_its_own_colour_and_marker_from_the_okabe_ito_palette():
    assert set(COLORS) == set(MARKERS)
    assert {"conv2", "conv4", "conv6", "rewind-0", "lr-rewind", "finetune"} | set(ARMS) <= set(COLORS)
    pairs = [(COLORS[a].upper(), MARKERS[a]) for a in COLORS]
    assert len(set(pairs)) == len(pairs), "two arms look alike"
    assert {c.upper() for c in COLORS.values()} <= OKABE_ITO | {plots.GREY.upper()}
    assert plots.GREY.upper() == "#999999"
    # the arms drawn together in notebooks 03 and 04 differ in colour and in marker, each on its own
    assert len({COLORS[a] for a in ARMS}) == len(ARMS) and len({MARKERS[a] for a in ARMS}) == len(ARMS)
    for group in (("ticket", "rewind-0", "reinit", "dense"), ("ticket", "lr-rewind", "finetune", "dense"),
                  ("conv2", "conv4", "conv6"), ("ticket", "signs", "reinit", "dense"),
                  ("ticket", "top_k", "sampled", "dense")):
        assert len({COLORS[a] for a in group}) == len(group) and len({MARKERS[a] for a in group}) == len(group)
    assert style("reinit") == {"color": COLORS["reinit"], "marker": MARKERS["reinit"]}
    assert style("a model the course does not know") == {}
    assert style("a", index=0) != style("b", index=1)
    assert {"ticket", "reinit", "random", "dense"} <= set(LABELS)


def test_the_figures_draw_each_arm_in_its_colour_and_marker():
    run = zigzag_run(4)
    ax = plot_vs_weights(run)
    for line, name in zip(ax.get_lines(), ("ticket", "reinit", "random")):
        assert line.get_label() == LABELS[name]
        assert (line.get_color(), line.get_marker()) == (COLORS[name], MARKERS[name])
    band = plot_band_vs_weights([run, run], "random")
    mean = band.get_lines()[-1]
    assert (mean.get_color(), mean.get_marker()) == (COLORS["random"], MARKERS["random"])
    assert np.allclose(band.collections[-1].get_facecolor()[0][:3], matplotlib.colors.to_rgb(COLORS["random"]))
    ref = plot_band_vs_weights([run, run], "ticket", styled_as="reference")
    assert ref.get_lines()[-1].get_color() == COLORS["reference"]
    other = plot_vs_weights(run, arms=["ticket"], styled_as="rewind-0")
    assert other.get_lines()[0].get_marker() == MARKERS["rewind-0"]
    # any other line the course draws takes colour and marker from the same palette
    assert {c.upper() for c in plt.rcParams["axes.prop_cycle"].by_key()["color"]} <= OKABE_ITO
    lines = plot_error_along_line([0.1, 0.3, 0.1], label="a")
    plot_error_along_line([0.1, 0.2, 0.1], ax=lines, label="b")
    first, second = lines.get_lines()
    assert first.get_color() != second.get_color() and first.get_marker() != second.get_marker()


def test_training_and_validation_loss_differ_without_colour_and_are_labelled():
    result = make_run({"ticket": [0.9]}).rounds[0].arms["ticket"]
    ax = plot_curve(result, "train_loss", label="training loss", color="black", mark_early_stop=False)
    plot_curve(result, "val_loss", ax=ax, label="validation loss", color="black")
    train, val = ax.get_lines()[:2]
    assert train.get_linestyle() != val.get_linestyle() and train.get_marker() != val.get_marker()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["training loss", "validation loss"]


# --- bands and baselines -----------------------------------------------------------------------

def test_a_band_is_visible_and_the_legend_says_what_it_spans():
    runs = [make_run({"ticket": [0.90, 0.92, 0.93]}), make_run({"ticket": [0.91, 0.95, 0.90]})]
    ax = plot_band_vs_weights(runs, "ticket")
    band = ax.collections[-1]
    assert isinstance(band, PolyCollection) and band.get_alpha() >= 0.25
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "shaded band: min–max over 2 seeds" in texts
    assert f"{LABELS['ticket']} (2 seeds)" in texts
    entry = ax.get_legend().legend_handles[texts.index("shaded band: min–max over 2 seeds")]
    assert entry.get_alpha() >= 0.25 and entry.get_visible()
    lows, highs = band.get_paths()[0].vertices[:, 1].min(), band.get_paths()[0].vertices[:, 1].max()
    assert (lows, highs) == pytest.approx((90, 95))


def test_accuracy_plots_draw_the_dense_network_where_it_is():
    run = make_run({"ticket": [0.90, 0.95, 0.97], "reinit": [0.90, 0.91, 0.89]})
    ax = plot_vs_weights(run)
    (dense,) = baselines(ax, "dense")
    assert dense.get_label() == "dense network" and display_y(ax, dense) == pytest.approx([90, 90])
    assert "dense network" in [t.get_text() for t in ax.get_legend().get_texts()]
    assert len(ax.get_lines()) == 2, "baselines are not data lines"
    plot_vs_weights(run, ax=ax, arms=["ticket"], label_suffix=" (again)")
    assert len(baselines(ax, "dense")) == 1, "one line per dense value"
    plot_vs_weights(make_run({"ticket": [0.93, 0.94]}), ax=ax, label_suffix=" (your run)")
    labels = {c.get_label(): display_y(ax, c)[0] for c in baselines(ax, "dense")}
    assert labels == pytest.approx({"dense network": 90, "dense network (your run)": 93})
    runs = [make_run({"ticket": [0.90, 0.95]}), make_run({"ticket": [0.94, 0.95]})]
    band = plot_band_vs_weights(runs, "ticket", "test_accuracy")
    (mean,) = baselines(band, "dense")
    assert display_y(band, mean) == pytest.approx([92, 92]) and "2 seeds" in mean.get_label()
    assert baselines(plot_vs_weights(run, dense=False), "dense") == []
    assert baselines(plot_vs_weights(run, "early_stop_iteration"), "dense") == []


@pytest.mark.parametrize("rewind", [0, 30])
def test_early_stop_plots_mark_the_training_length_that_caps_them(rewind):
    stops = {"ticket": [300, 150, 300], "reinit": [300, 300, 300]}
    run = make_run({"ticket": [0.9, 0.9, 0.9], "reinit": [0.9, 0.8, 0.7]}, stops, iterations=300, rewind=rewind)
    curve = run.rounds[1].arms["ticket"].curve  # late rewinding trains from k to the same last iteration
    assert (curve[0].iteration, curve[-1].iteration) == (rewind, 300)
    ax = plot_vs_weights(run, "early_stop_iteration")
    (cap,) = baselines(ax, "cap")
    assert display_y(ax, cap) == pytest.approx([300, 300])
    assert "training length" in cap.get_label() and "early stop capped here" in cap.get_label()
    assert cap.get_label() in [t.get_text() for t in ax.get_legend().get_texts()]
    assert cap.get_zorder() > ax.get_lines()[0].get_zorder(), "the cap shows over the stops that sit on it"
    assert list(ax.get_lines()[1].get_ydata()) == [300, 300, 300]
    assert baselines(plot_vs_weights(run), "cap") == []
    # without the iterations in the config, the longest curve's end is the cap
    bare = make_run({"ticket": [0.9, 0.9]}, iterations=200, with_iterations=False)
    ax2 = plot_vs_weights(bare, "early_stop_iteration")
    assert display_y(ax2, baselines(ax2, "cap")[0])[0] == pytest.approx(200)
    # two runs of different lengths: two caps, each labelled with its length
    band = plot_band_vs_weights([run, run], "ticket", "early_stop_iteration")
    plot_vs_weights(make_run({"ticket": [0.9, 0.9]}, iterations=500), "early_stop_iteration", ax=band)
    caps = sorted(display_y(band, c)[0] for c in baselines(band, "cap"))
    assert caps == pytest.approx([300, 500])
    assert {c.get_label() for c in baselines(band, "cap")} == {
        "training length, 300 iterations (early stop capped here)",
        "training length, 500 iterations (early stop capped here)"}


# --- legends off the curves --------------------------------------------------------------------

def data_points(fig) -> np.ndarray:
    points = [line.get_transform().transform(line.get_xydata()) for ax in fig.axes for line in ax.get_lines()]
    return np.concatenate(points)


def assert_legends_clear(fig):
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend()] + list(fig.legends)
    assert legends
    points = data_points(fig)
    tight = fig.get_tightbbox(renderer).transformed(fig.dpi_scale_trans)
    for legend in legends:
        box = legend.get_window_extent(renderer)
        inside = ((points[:, 0] >= box.x0) & (points[:, 0] <= box.x1)
                  & (points[:, 1] >= box.y0) & (points[:, 1] <= box.y1))
        assert not inside.any(), f"the legend covers {inside.sum()} data points"
        for ax in fig.axes:
            assert not box.overlaps(ax.get_window_extent(renderer)), "a legend lies over an axes"
            assert not box.overlaps(ax.xaxis.get_tightbbox(renderer)), "a legend lies over tick labels"
        assert tight.x0 <= box.x0 and box.x1 <= tight.x1 and tight.y0 <= box.y0 and box.y1 <= tight.y1, \
            "saving or showing with a tight bounding box would crop the legend"
    for a, b in itertools.combinations(legends, 2):
        assert not a.get_window_extent(renderer).overlaps(b.get_window_extent(renderer))


def test_legends_never_cover_a_curve():
    run = zigzag_run()
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
    plot_vs_weights(run, ax=left)
    plot_vs_weights(run, "early_stop_iteration", ax=right)
    assert_legends_clear(fig)

    fig, ax = plt.subplots()
    plot_band_vs_weights([run, zigzag_run()], "ticket", ax=ax)
    plot_band_vs_weights([run, zigzag_run()], "reinit", ax=ax)
    plot_vs_weights(run, ax=ax, linestyle="--", label_suffix=" (your run)")
    assert_legends_clear(fig)

    fig, ax = plt.subplots(figsize=(7, 4))
    result = run.rounds[0].arms["ticket"]
    plot_curve(result, "train_loss", ax=ax, label="training loss")
    plot_curve(result, "val_loss", ax=ax, label="validation loss")
    assert_legends_clear(fig)

    fig, axes = plt.subplots(2, 2, figsize=(12, 7))
    for row, key in enumerate(("early_stop_test_accuracy", "early_stop_iteration")):
        for column in range(2):
            plot_vs_weights(run, key, ax=axes[row][column])
    legend = figure_legend(fig)
    assert all(ax.get_legend() is None for ax in fig.axes)
    texts = [t.get_text() for t in legend.get_texts()]
    assert len(texts) == len(set(texts)) and "dense network" in texts and any("training length" in t for t in texts)
    assert_legends_clear(fig)


def test_a_legend_can_go_to_the_right_and_stays_clear():
    fig, ax = plt.subplots()
    plot_vs_weights(zigzag_run(), ax=ax, legend="right")
    assert_legends_clear(fig)
    assert ax.get_legend().get_window_extent().x0 > ax.get_window_extent().x1
    with pytest.raises(ValueError, match="below"):
        plot_vs_weights(zigzag_run(), legend="inside")


# --- the weights axis --------------------------------------------------------------------------

def ticks(ax) -> tuple[list[float], list[float]]:
    ax.figure.canvas.draw()
    return sorted(ax.xaxis.get_majorticklocs(), reverse=True), sorted(ax.xaxis.get_minorticklocs(), reverse=True)


def assert_labels_apart(ax):
    ax.figure.canvas.draw()
    boxes = sorted((t.get_window_extent() for t in ax.get_xticklabels() if t.get_text()), key=lambda b: b.x0)
    for a, b in zip(boxes, boxes[1:]):
        assert a.x1 + 3 < b.x0, "tick labels touch"


def test_the_weights_axis_ticks_the_points_drawn():
    remaining = [100, 80, 50, 30, 20, 10, 5, 2, 1]  # notebook 02's sparsities 0% to 99%
    fig, ax = plt.subplots(figsize=(14, 4))
    ax.plot(remaining, np.linspace(97, 10, 9), "o-")
    weights_axis(ax)
    major, minor = ticks(ax)
    assert major == remaining and minor == []
    assert [t.get_text() for t in ax.get_xticklabels()] == ["100", "80", "50", "30", "20", "10", "5", "2", "1"]
    assert ax.get_xlim()[0] > 100 and ax.get_xlim()[1] < 1, "100% at the left, every point inside"

    fig, ax = plt.subplots()  # the course's 6.4-inch figure: some labels thinned, every point ticked
    ax.plot(remaining, np.linspace(97, 10, 9), "o-")
    weights_axis(ax)
    major, minor = ticks(ax)
    assert sorted(major + minor, reverse=True) == remaining
    assert major[0] == 100 and major[-1] == 1 and len(major) >= 7
    assert_labels_apart(ax)


def test_an_imp_runs_axis_ticks_its_rounds_and_keeps_the_labels_apart():
    run = make_run({"ticket": [0.9] * 21})  # 21 rounds down to 1.15% of the weights
    ax = plot_vs_weights(run)
    drawn = [100 * r.weights_remaining for r in run.rounds]
    major, minor = ticks(ax)
    assert sorted(major + minor, reverse=True) == pytest.approx(drawn)
    assert major[0] == pytest.approx(100) and major[-1] == pytest.approx(drawn[-1])
    assert 5 <= len(major) < len(drawn)
    assert_labels_apart(ax)
    assert ax.get_xticklabels()[1].get_text() == f"{drawn[drawn.index(major[1])]:.3g}"
    # the ticks follow what is drawn, also after the axis was set up: another run's points join them
    ax.plot([50, 25], [0.9, 0.9], "o")
    major, minor = ticks(ax)
    assert 25 in major + minor and 50 in major + minor
    # and a run of two rounds gets an axis of two ticks, not a fixed list
    few = plot_vs_weights(make_run({"ticket": [0.9, 0.9]}))
    assert ticks(few) == ([100, 80], [])


# --- what the notebooks and widgets call keeps working ------------------------------------------

def test_the_notebooks_calls_keep_working():
    run = zigzag_run(6)
    ax = plot_band_vs_weights([run, run], "ticket", "early_stop_test_accuracy", label="reference: ticket")
    assert ax.get_lines()[-1].get_label() == "reference: ticket"  # notebook 03 restyles these two
    assert isinstance(ax.collections[-1], PolyCollection)
    plot_vs_weights(run, "early_stop_test_accuracy", ax=ax, arms=["ticket"], label_suffix=" (your run)")
    plot_vs_weights(run, "early_stop_iteration", None, ["ticket"], 0.5, ": iterative", "--")
    plot_curve(run.rounds[1].arms["ticket"], ax=ax, label="round 1", color=(0.1, 0.2, 0.3, 1.0))
    weights_axis(plt.subplots()[1], 1.0)


def test_the_explorers_draw():
    from lthkit.course.widgets import depth_explorer, instability_explorer, round_explorer

    run = zigzag_run(4)
    explorer = round_explorer(run)
    explorer.slider.value = 2
    depth_explorer({"conv2": run, "conv4": zigzag_run(4)}).slider.value = 1
    depth_explorer({"a": run, "b": zigzag_run(4)})
    instability_explorer({0: [0.1, 0.3, 0.1], 20: [0.1, 0.11, 0.1]})
    fig = plt.gcf()
    assert_legends_clear(fig)


def test_the_instability_figure_colours_each_line_by_its_verdict_and_draws_the_two_point_level():
    """06's static figure: the unstable line in the reinit colour and the stable one in the ticket's (as
    the slider colours them), each with a dotted level at the mean of its ends plus 2 points."""
    from lthkit.course.plots import plot_instability

    ax = plot_instability({0: [0.53, 0.6, 0.47], 30: [0.511, 0.513, 0.51]})
    curves = [line for line in ax.get_lines() if line.get_linestyle() != ":"]
    levels = [line for line in ax.get_lines() if line.get_linestyle() == ":"]
    assert [c.get_color() for c in curves] == [COLORS["reinit"], COLORS["ticket"]]
    assert [c.get_label() for c in curves] == ["copies from iteration 0: unstable", "copies from iteration 30: stable"]
    assert [round(level.get_ydata()[0], 2) for level in levels] == [52.0, 53.05]
    assert [level.get_color() for level in levels] == [COLORS["reinit"], COLORS["ticket"]]


def test_a_figure_of_several_schedules_labels_round_values_and_ticks_every_point_drawn():
    fig, ax = plt.subplots()
    ax.plot([100, 60.1, 36.1, 21.7, 13.1, 7.87, 4.75, 2.87, 1.74], np.linspace(97, 96, 9), "o-")  # IMP's rounds
    ax.plot([90, 70, 51.1, 30, 10, 5], np.linspace(94, 79, 6), "o-")  # masks at other densities
    weights_axis(ax, labelled=(100, 50, 20, 10, 5, 2))
    fig.canvas.draw()
    assert [t.get_text() for t in ax.get_xticklabels() if t.get_text()] == ["100", "50", "20", "10", "5", "2"]
    major, minor = ticks(ax)
    assert {90, 70, 51.1, 30, 60.1, 1.74} <= set(minor), "every point drawn keeps its unlabelled tick"
    assert_labels_apart(ax)
