"""The notebook helpers: parameter checks, widget callbacks, exercise checkers, plots."""

import json

import matplotlib

matplotlib.use("Agg")

import pytest
import torch

from lthkit import course
from lthkit.config import make_config
from lthkit.course.exercises import EXERCISES, check, verdict
from lthkit.imp import run_imp
from lthkit.models import build_model
from lthkit.course.plots import COLORS, plot_band_vs_weights, plot_curve, plot_vs_weights
from lthkit.train import TrainConfig, train
from lthkit.course.widgets import one_shot_mask, round_explorer, round_view, sparsity_explorer, sparsity_view


def settings(**changes):
    base = dict(seed=0, device="cpu", output_dir="out", rounds=None, iterations=None, subset=None, eval_every=None)
    return course.notebook_settings("03", changes.pop("budget", "test"), **{**base, **changes})


def test_knobs_left_at_none_come_from_the_budget():
    s = settings()
    assert (s["rounds"], s["iterations"], s["subset"]) == (3, 100, 1000)
    assert settings(budget="classroom")["iterations"] == 2751
    assert course.notebook_settings("04", "classroom", seed=0, device="cpu", output_dir="o", iterations=None)[
        "iterations"] == 2751
    assert settings(rounds=5)["rounds"] == 5


@pytest.mark.parametrize("changes,message", [
    ({"budget": "huge"}, "budget must be one of 'test', 'classroom', 'paper', got 'huge'"),
    ({"seed": "3"}, "seed must be a whole number, got '3' (str): for example -p seed 3"),
    ({"seed": 1.5}, "seed must be a whole number"),
    ({"rounds": "10"}, "rounds must be a positive whole number or None"),
    ({"iterations": 0}, "iterations must be a positive whole number or None"),
    ({"device": 0}, "device must be a string"),
    ({"output_dir": 3}, "output_dir must be a folder path"),
])
def test_wrong_parameters_get_a_message_that_says_what_to_pass(changes, message):
    with pytest.raises(course.ParameterError, match=message.replace("(", r"\(").replace(")", r"\)")):
        settings(**changes)


def test_unknown_knob_is_refused():
    with pytest.raises(course.ParameterError, match="no knob 'epochs'"):
        course.notebook_settings("01", "test", seed=0, device="cpu", output_dir="o", epochs=3)


def test_experiment_config_changes_only_what_the_budget_sets():
    config = course.experiment_config(settings(budget="classroom"), controls=("reinit",))
    assert config.rounds == 15 and config.training.iterations == 2751 and config.controls == ("reinit",)
    assert set(config.departures_from_paper()) == {"iterations"}


def test_save_json(tmp_path):
    path = course.save_json(tmp_path / "deep", "x.json", {"a": 1})
    assert json.loads(path.read_text()) == {"a": 1}


def test_predictions_scale_with_the_work():
    speed = {"per_iteration": 0.002, "per_round_iteration": 0.005, "per_evaluation": 0.05, "per_mask_iteration": 0.01,
         "per_vit_iteration": 0.008, "per_vit_evaluation": 0.3}
    minutes = course.predict_minutes(speed, "classroom")
    assert tuple(minutes) == course.LENET_NOTEBOOKS
    alone, together, evals, masks = course.training_work("03", "classroom")
    assert together == masks == 0 and minutes["03"] == pytest.approx((alone * 0.002 + evals * 0.05) / 60)
    alone, together, evals, _ = course.training_work("04", "classroom")
    assert (alone, together) == (5 * 2751, 15 * 2751)
    assert minutes["04"] == pytest.approx((alone * 0.002 + together * 0.005 + evals * 0.05) / 60)
    assert course.predict_minutes(speed, "paper")["03"] > minutes["03"]
    alone, together, evals, masks = course.training_work("08", "classroom")
    assert (alone, together, masks) == (1834, 8 * 1834, 9 * 1100)
    assert minutes["08"] == pytest.approx((alone * 0.002 + together * 0.005 + evals * 0.05 + masks * 0.01) / 60)
    alone, together, evals, masks = course.training_work("09", "classroom")
    assert (alone, together, masks) == (5 * 1834, 4 * 1834, 0)
    assert minutes["09"] == pytest.approx(((alone + 3 * together) * 0.008 + evals * 0.3) / 60)


@pytest.fixture(scope="module")
def trained(mnist_small):
    model = build_model("lenet300", (1, 28, 28), seed=0)
    train(model, mnist_small, TrainConfig(iterations=60, eval_every=60), progress=False)
    return model


def test_sparsity_view_prunes_a_copy_and_reports(trained, mnist_small):
    before = trained.fc1.weight.detach().clone()
    view = sparsity_view(trained, mnist_small, 0.9)
    assert torch.equal(trained.fc1.weight, before)
    assert view.weights_remaining == pytest.approx(0.1, abs=1e-3)
    assert view.first_layer_masks.shape == (8, 784)
    assert (view.first_layer_weights != 0).mean() == pytest.approx(0.1, abs=1e-3)
    assert view.readout.startswith("sparsity 90%: 10.0% of weights left")
    dense = sparsity_view(trained, mnist_small, 0.0)
    assert dense.test_accuracy > sparsity_view(trained, mnist_small, 0.99).test_accuracy
    with pytest.raises(ValueError, match="outside"):
        sparsity_view(trained, mnist_small, 1.5)


def test_global_one_shot_mask_has_the_asked_sparsity(trained):
    assert one_shot_mask(trained, 0.8, "global").weights_remaining() == pytest.approx(0.2, abs=1e-5)


def test_sparsity_explorer_slider_redraws(trained, mnist_small):
    explorer = sparsity_explorer(trained, mnist_small)
    assert explorer.readout.value.startswith("sparsity 0%")
    explorer.slider.value = 75
    assert explorer.readout.value.startswith("sparsity 75%: 25.0% of weights left")


@pytest.fixture(scope="module")
def small_run(mnist_small, tmp_path_factory):
    config = make_config(rounds=2, iterations=30, eval_every=10, subset=600, device="cpu")
    return run_imp(config, tmp_path_factory.mktemp("run"), data=mnist_small, progress=False)


def test_round_view_and_explorer(small_run):
    view = round_view(small_run, 2)
    assert view.weights_remaining == small_run.rounds[2].weights_remaining
    assert view.arms == ["ticket", "reinit", "random"]
    explorer = round_explorer(small_run)
    explorer.slider.value = 1
    assert explorer.readout.value.startswith("round 1: 80.0% of weights left")
    with pytest.raises(ValueError, match="rounds go from 0 to 2"):
        round_view(small_run, 3)


def test_depth_view_and_explorer_compare_runs_round_by_round(small_run, mnist_small, tmp_path):
    from lthkit.course.widgets import depth_explorer, depth_view

    shorter = run_imp(make_config(rounds=1, iterations=30, eval_every=10, subset=600, device="cpu", controls=(),
                                  prune_rates={"fc": 0.5, "output": 0.5}), tmp_path, data=mnist_small, progress=False)
    runs = {"a": small_run, "b": shorter}
    view = depth_view(runs, 1)
    assert view.rows["a"] == (small_run.rounds[1].weights_remaining,
                              small_run.rounds[1].arms["ticket"].early_stop_test_accuracy)
    assert view.rows["b"][0] == pytest.approx(0.5, abs=1e-3)
    with pytest.raises(ValueError, match="rounds go from 0 to 1"):
        depth_view(runs, 2)
    explorer = depth_explorer(runs)
    assert explorer.slider.max == 1
    explorer.slider.value = 1
    assert explorer.readout.value.startswith("round 1: a 80.0% of weights") and "; b 50.0% of weights" in explorer.readout.value


def test_exercise_checkers_accept_the_right_answer_and_refuse_others(small_run, trained, capsys):
    from lthkit.course.widgets import one_shot_mask as osm

    report = osm(trained, 0.9, "global").report()
    hardest = min(report, key=lambda n: report[n]["weights_remaining"]).removesuffix(".weight")
    best = max(small_run.rounds, key=lambda r: r.arms["ticket"].early_stop_test_accuracy).round
    last = small_run.rounds[-1].arms
    worse = min(("reinit", "random"), key=lambda a: last[a].early_stop_test_accuracy)
    gaps = [r.round for r in small_run.rounds[1:]
            if r.arms["ticket"].early_stop_test_accuracy - r.arms["reinit"].early_stop_test_accuracy > 0.01]
    right = {
        "04.first-gap": (gaps[0] if gaps else "none", {"results": small_run}),
        "00.train-size": (55000, {}), "00.epoch-iterations": (917, {}), "01.fc1-weights": (235200, {}),
        "01.total-parameters": (266610, {}), "02.fc1-after-3-rounds": (0.512, {}),
        "02.global-hardest-hit": (hardest, {"model": trained}), "03.weights-after-10": (10.83, {}),
        "03.best-round": (best, {"results": small_run}), "04.worse-control": (worse, {"results": small_run}),
        "05.conv6-weights-after-5": (38.67, {}), "05.most-fc": ("conv2", {}),
        "06.finetune-lr": (0.001, {}), "06.instability-by-hand": (25, {}),
        "06.earliest-stable": (20, {"lines": {0: [0.5, 0.8, 0.5], 20: [0.3, 0.31, 0.3], 50: [0.2, 0.2, 0.2]}}),
        "07.imp-trainings": (19, {}), "08.mask-bytes": (33275, {}),
        "09.weights-after-4": (13.2, {}), "10.csr-crossover": (3.0, {}),
    }
    for name, (answer, context) in right.items():
        assert verdict(name, answer, **context).correct, name
        assert not verdict(name, "nonsense", **context).correct, name
    result = small_run.rounds[0].arms["ticket"]
    spacing = result.curve[1].iteration - result.curve[0].iteration
    assert verdict("01.early-stop", result.early_stop_iteration, result=result).correct
    assert verdict("01.early-stop", result.early_stop_iteration - spacing, result=result).correct
    assert not verdict("01.early-stop", result.early_stop_iteration + 2 * spacing + 1, result=result).correct
    check("00.train-size", None)
    check("00.train-size", 55000)
    assert set(right) | {"01.early-stop"} == {n for n, fn in EXERCISES.items() if fn.__module__ == "lthkit.course.exercises"}
    printed = capsys.readouterr().out
    assert "✗ not answered yet" in printed and "✓ 55000 it is." in printed


def test_plots_draw_every_arm_in_its_colour(small_run):
    ax = plot_vs_weights(small_run)
    assert [line.get_label() for line in ax.get_lines()] == [
        "winning ticket (rewound)", "same mask, random re-init", "random mask"]
    assert ax.get_xscale() == "log" and "weights remaining" in ax.get_xlabel()
    assert ax.get_lines()[0].get_color() == COLORS["ticket"]
    band = plot_band_vs_weights([small_run, small_run], "reinit")
    assert "2 seeds" in band.get_lines()[0].get_label()
    xs, ys = band.get_lines()[0].get_data()
    assert xs[0] == 100 and ys[0] == small_run.rounds[0].arms["ticket"].early_stop_test_accuracy * 100
    assert len(xs) == len(small_run.rounds)
    curve = plot_curve(small_run.rounds[1].arms["ticket"])
    assert curve.get_xlabel() == "training iteration"


def test_best_round_accepts_every_round_tied_for_the_top(small_run):
    import copy

    tied = copy.deepcopy(small_run)
    top = max(r.arms["ticket"].early_stop_test_accuracy for r in tied.rounds)
    for r in tied.rounds:
        r.arms["ticket"].early_stop_test_accuracy = top
    assert all(verdict("03.best-round", r.round, results=tied).correct for r in tied.rounds)


def test_earliest_stable_rewind_point_comes_from_the_learners_own_lines():
    unstable = {0: [0.5, 0.8, 0.5], 20: [0.3, 0.4, 0.3]}
    assert verdict("06.earliest-stable", "none", lines=unstable).correct
    assert not verdict("06.earliest-stable", 20, lines=unstable).correct
    stable_late = {0: [0.5, 0.8, 0.5], 20: [0.3, 0.32, 0.3], 50: [0.2, 0.2, 0.2]}
    assert verdict("06.earliest-stable", "20", lines=stable_late).correct
    assert not verdict("06.earliest-stable", 50, lines=stable_late).correct
    assert not verdict("06.earliest-stable", "none", lines=stable_late).correct


def test_rewinding_notebook_budgets_set_the_rewind_points_and_allow_rewinding_to_zero():
    knobs = dict(rounds=None, iterations=None, subset=None, batch_size=None, eval_every=None, eval_images=None)
    paper = course.notebook_settings("06", "paper", seed=0, device="cpu", output_dir="o", rewind_iteration=None, **knobs)
    assert paper["rewind_points"] == (0, 100, 500, 2000) and paper["rewind_iteration"] == 2000
    config = course.experiment_config(paper, model="resnet20", rewind_iteration=paper["rewind_iteration"])
    assert config.training.iterations == 63_000 and config.training.batch_size == 128 and config.departures_from_paper() == {
        "rewind_iteration": (2000, 0), "eval_every": (1000, 100)}
    zero = course.notebook_settings("06", "classroom", seed=0, device="cpu", output_dir="o", rewind_iteration=0, **knobs)
    assert zero["rewind_iteration"] == 0
    with pytest.raises(course.ParameterError, match="rewind_iteration must be a whole number, 0 or more, or None"):
        course.notebook_settings("06", "test", seed=0, device="cpu", output_dir="o", rewind_iteration=-1, **knobs)
    test = course.notebook_settings("06", "test", seed=0, device="cpu", output_dir="o", rewind_iteration=None, **knobs)
    config = course.experiment_config(test, model="resnet20", rewind_iteration=test["rewind_iteration"], retrain="finetune")
    assert (config.training.batch_size, config.retrain, config.rewind_iteration) == (32, "finetune", 2)


def test_instability_view_and_explorer_judge_each_rewind_point():
    from lthkit.course.plots import plot_error_along_line
    from lthkit.course.widgets import instability_explorer, instability_view

    lines = {0: [0.10, 0.30, 0.12], 20: [0.10, 0.115, 0.11]}
    view = instability_view(lines, 0)
    assert view.instability == pytest.approx(0.19) and not view.stable
    assert instability_view(lines, 20).stable
    assert view.readout.startswith("copies from iteration 0: end errors 10.0% and 12.0%, the line rises 19.0%")
    with pytest.raises(ValueError, match="rewind points are \\[0, 20\\]"):
        instability_view(lines, 5)
    explorer = instability_explorer(lines)
    assert explorer.readout.value.startswith("copies from iteration 0:") and "unstable" in explorer.readout.value
    explorer.slider.value = 20
    assert explorer.readout.value.startswith("copies from iteration 20:") and ": stable" in explorer.readout.value
    ax = plot_error_along_line(lines[0])
    xs, ys = ax.get_lines()[0].get_data()
    assert list(xs) == [0, 0.5, 1] and list(ys) == pytest.approx([10, 30, 12])


def test_rewind_points_follow_a_learners_shorter_run_and_other_k():
    knobs = dict(rounds=None, subset=None, batch_size=None, eval_every=None, eval_images=None)
    short = course.notebook_settings("06", "classroom", seed=0, device="cpu", output_dir="o", iterations=15,
                                     rewind_iteration=5, **knobs)
    assert short["rewind_points"] == (0, 5)
    other_k = course.notebook_settings("06", "classroom", seed=0, device="cpu", output_dir="o", iterations=None,
                                       rewind_iteration=50, **knobs)
    assert other_k["rewind_points"] == (0, 30, 50)
    with pytest.raises(course.ParameterError, match="rewind_iteration 30 must be smaller than iterations \\(10\\)"):
        course.notebook_settings("06", "classroom", seed=0, device="cpu", output_dir="o", iterations=10,
                                 rewind_iteration=None, **knobs)


def test_notebook_runs_live_in_one_folder_per_run_budget_and_seed(tmp_path):
    s = settings(output_dir=str(tmp_path), iterations=20, eval_every=10, rounds=1)
    s["eval_images"] = 100
    config = course.experiment_config(s)
    assert course.run_folder(s, "imp") == tmp_path / "imp-test-seed0" and config.eval_images == 100
    data = course.notebook_data(s, config)
    assert len(data.val) == len(data.test) == 100 and len(data.train) == 1000
    first = course.notebook_imp(s, config, "imp", data)
    again = course.notebook_imp(s, config, "imp", data)  # resumes: nothing is trained twice
    assert (tmp_path / "imp-test-seed0" / "results.json").exists() and again.to_dict() == first.to_dict()


def test_the_paper_budget_runs_five_seeds_together_and_the_notebook_plots_them(tmp_path):
    assert all(course.BUDGETS[nb]["paper"]["seeds"] == course.PAPER_SEEDS == (0, 1, 2, 3, 4) for nb in ("03", "04"))
    assert all(course.BUDGETS[nb][b]["seeds"] == (0,) for nb in ("03", "04") for b in ("test", "classroom"))
    s = settings(output_dir=str(tmp_path), iterations=20, eval_every=10, rounds=1, seed=3)
    assert course.seed_runs(s, "imp") == []
    s["seeds"] = (0, 1)  # as the paper budget's, shorter
    config = course.experiment_config(s, controls=("reinit",))
    data = course.notebook_data(s, config)
    mine = course.notebook_imp(s, config, "imp", data)
    both = course.seed_runs(s, "imp")
    assert [r.config["seed"] for r in both] == [3, 4] and both[0].to_dict() == mine.to_dict()
    from lthkit.imp import run_imp

    alone = run_imp(config.from_dict({**config.to_dict(), "seed": 4}), tmp_path / "alone", data=data, progress=False)
    assert both[1].to_dict() == alone.to_dict()  # the loop on the CPU: each seed bit for bit as run alone
    assert sorted(p.name for p in (tmp_path / "imp-test-seeds3-4").iterdir()) == ["seed3", "seed4"]
    assert course.run_folder(s, "imp") == tmp_path / "imp-test-seeds3-4" / "seed3"  # the notebook's own run


REFERENCES = {"mnist-lenet300": [0, 1, 2], "cifar10-conv2": [0, 1, 2], "cifar10-resnet20-k30": [1, 2],
              "cifar10-resnet20-k0": [1, 2],
              **{f"mnist-at-init-{method}": [0, 1, 2] for method in ("imp", "magnitude", "snip", "grasp", "synflow")}}


@pytest.mark.parametrize("name, seeds", REFERENCES.items())
def test_reference_runs_are_what_make_reference_sh_makes(name, seeds):
    """Each committed reference file is the results.json of a sweep in make_reference.sh: one file
    per seed, the same settings in each, and only the seed differing."""
    runs = course.reference_runs(name)
    assert [run.config["seed"] for run in runs] == seeds
    from lthkit.config import ExperimentConfig

    configs = [{k: v for k, v in ExperimentConfig.from_dict(run.config).to_dict().items() if k != "seed"} for run in runs]
    assert all(c == configs[0] for c in configs)
    script = (course.REFERENCE_DIR / "make_reference.sh").read_text()
    config = runs[0].config
    assert f"--set model={config['model']}" in script and f"--set rounds={config['rounds']}" in script
    assert f"--set dataset={config['dataset']}" in script and "lthkit\" sweep collect" in script
    assert all(len(run.rounds) == config["rounds"] + 1 for run in runs)
    if "at-init" in name:  # notebook 07's classroom budget, each method named, IMP's dense round shared
        assert config["method"] == name.rsplit("-", 1)[1] and config["iterations"] == 1834
        assert (config["global_pruning"], config["prune_rates"]["fc"]) == (config["method"] != "imp", 0.4)
    if config["dataset"] == "cifar10":
        assert f"--set iterations={config['iterations']}" in script and config["eval_images"] == 1000
        assert f"--set rewind-iteration={config['rewind_iteration']}" in script or config["model"] == "conv2"


def test_one_shot_prunes_the_dense_network_to_round_r_in_one_step(mnist_small, tmp_path):
    from lthkit.imp import load_ticket
    from lthkit.rewind import Snapshot, rewind_to

    config = make_config(dataset="mnist", model="lenet300", rounds=2, iterations=40, eval_every=20, subset=600,
                         device="cpu", prune_rates={"fc": 0.5, "output": 0.3}, rewind_iteration=10, controls=())
    run_imp(config, tmp_path, data=mnist_small, progress=False)
    mask, result = course.one_shot(config, tmp_path, 2, data=mnist_small, progress=False)
    iterative = load_ticket(tmp_path, 2).mask
    assert all(mask.alive(n) == iterative.alive(n) for n in iterative) and mask != iterative
    dense = torch.load(tmp_path / "round_00.pt", weights_only=True)["trained"]
    for name, m in mask.items():  # the largest weights of the dense network, layer by layer
        assert dense[name][m == 0].abs().max() <= dense[name][m == 1].abs().min()
    assert result.curve[0].iteration == 10
    ticket = rewind_to(build_model("lenet300", (1, 28, 28)), Snapshot.load(tmp_path / "rewind_point.pt"), mask)
    assert train(ticket, mnist_small, config.training, mask=mask, start_iteration=10,
                 progress=False).result == result


def test_the_readout_of_tickets_against_the_dense_network_says_what_the_run_shows():
    """03's readout is printed from the learner's run: where the tickets fall below the dense network,
    the best round, the earlier stops and the stops the budget capped, each from the results given."""
    from lthkit.course.readouts import tickets_against_dense
    from lthkit.results import ArmResult, CurvePoint, Results, RoundResult

    def arm(accuracy, stop, last=1000):
        points = sorted({0, stop, last})
        return ArmResult.from_curve([CurvePoint(i, 0.5, 0.1 if i == stop else 1.0, accuracy, accuracy) for i in points])

    rounds = [RoundResult(r, w, {}, {"ticket": a}) for r, w, a in
              ((0, 1.0, arm(0.97, 600)), (1, 0.8, arm(0.975, 400)), (2, 0.64, arm(0.98, 500)), (3, 0.51, arm(0.96, 1000)))]
    text = tickets_against_dense(Results(config={}, rounds=rounds))
    assert "97.00% at its early stop (iteration 600)" in text
    assert "at or above it down to 64.0% of the weights; round 3 (51.0%) is the first below" in text
    assert "the best ticket: round 2, 98.00% at 64.0%" in text
    assert "2 of 3 tickets stop earlier" in text and "iterations 400-500" in text
    assert "1 early stop at the last iteration (1,000), at 51.0% of the weights" in text
    same = [rounds[0], RoundResult(1, 0.8, {}, {"ticket": arm(0.975, 400)}),
            RoundResult(2, 0.64, {}, {"ticket": arm(0.98, 400)})]
    assert "2 of 2 tickets stop earlier than the dense network (iteration 400, at 80.0% to 64.0% of the weights)" in \
        tickets_against_dense(Results(config={}, rounds=same))
    assert "1 of 1 tickets stop earlier than the dense network (iteration 400, at 80.0% of the weights)" in \
        tickets_against_dense(Results(config={}, rounds=same[:2]))


def test_the_readout_of_a_learning_curve_says_where_it_stops_and_how_flat_its_floor_is():
    """01's readout, from the learner's curve: the minimum of the validation loss, the other evaluations
    within ``near`` of it, the test accuracy's range after the stop and the training/validation gap."""
    from lthkit.course.readouts import learning_curve
    from lthkit.results import ArmResult, CurvePoint

    losses = {0: 2.3, 100: 0.2, 200: 0.1004, 300: 0.1, 400: 0.12, 500: 0.1009}
    curve = [CurvePoint(i, 0.02 if i else 2.3, v, 0.0, 0.95 + i / 10_000) for i, v in losses.items()]
    text = learning_curve(ArmResult.from_curve(curve), near=0.001)
    assert "lowest at iteration 300 of 500 (0.100, from 2.300 at the start)" in text
    assert "98.00% test accuracy there and 100.00% at the end" in text
    assert "2 other evaluations came within 0.001 of that minimum (iterations 200, 500)" in text
    assert "moves between 98.00% and 100.00%" in text
    assert "training loss is 0.020 and the validation loss 0.101" in text and "a gap of 0.081" in text
    still_falling = learning_curve(ArmResult.from_curve(curve[:4]), near=0.001)
    assert "the minimum is the last evaluation" in still_falling and "a clear dip" not in still_falling
    assert "no other evaluation came within 0.0001" in learning_curve(ArmResult.from_curve(curve), near=0.0001)


def _run(accuracies: dict[str, list[float]], weights=(1.0, 0.5, 0.25, 0.125)):
    """Results whose round r trains each arm at ``accuracies[arm][r]`` (round 0: the dense "ticket")."""
    from lthkit.results import ArmResult, CurvePoint, Results, RoundResult

    def arm(acc):
        return ArmResult.from_curve([CurvePoint(0, 1.0, 1.0, acc, acc), CurvePoint(100, 0.5, 0.5, acc, acc)])

    rounds = [RoundResult(r, w, {}, {a: arm(v[r]) for a, v in accuracies.items() if r == 0 and a == "ticket" or r})
              for r, w in enumerate(weights)]
    return Results(config={"dataset": "mnist", "eval_images": None}, rounds=rounds)


def test_the_readout_of_the_controls_counts_only_gaps_beyond_the_noise():
    """04's readout: a control a point behind from some round on, one that falls behind and recovers, and
    one never behind; the interval printed is the binomial one of 10,000 test images."""
    from lthkit.course.readouts import controls_against_ticket, interval_points

    run = _run({"ticket": [0.97, 0.975, 0.98, 0.978], "reinit": [0, 0.97, 0.965, 0.96], "random": [0, 0.97, 0.978, 0.975]})
    text = controls_against_ticket(run)
    assert f"±{interval_points(0.97, 10_000):.1f} points" == "±0.3 points" and "±0.3 points" in text
    assert "reinit is more than a point behind the ticket from round 2 (25.0% of the weights) on" in text
    assert "its largest gap is 1.80 points, at 12.5%" in text
    assert "random is never more than a point behind the ticket" in text
    assert "ticket 97.80%, reinit 96.00%, random 97.50%" in text
    recovers = controls_against_ticket(_run({"ticket": [0.97, 0.98, 0.98, 0.98], "reinit": [0, 0.96, 0.975, 0.95],
                                             "random": [0, 0.98, 0.98, 0.98]}))
    assert "first at round 1 (50.0%), not at every round after it" in recovers


def test_the_readout_against_a_reference_counts_sparsities_beyond_the_interval_of_a_difference():
    """07's readout: a gap counts only beyond the 95% interval of the difference of two accuracies (±0.5
    points near 97% on 10,000 images), below and above apart, and the sparsest shared round is named."""
    from lthkit.course.readouts import against, difference_interval, reference_spread, series

    assert round(difference_interval(0.97, 0.97, 10_000), 2) == 0.47
    run = _run({"ticket": [0.97, 0.975, 0.98, 0.978], "random": [0, 0.98, 0.97, 0.95], "reinit": [0, 0.972, 0.977, 0.981]})
    text = against({"ticket": series(run), "random": series(run, "random"), "reinit": series(run, "reinit")},
                   "ticket", 10_000)
    assert "random: below ticket at 2 of 3 sparsities, above it at 1; at 12.5% of the weights 95.00% against 97.80% " \
           "(-2.80 points)" in text
    assert "reinit: below ticket at 0 of 3 sparsities, above it at 0" in text
    other = _run({"ticket": [0.97, 0.96, 0.95, 0.94]})
    spread = reference_spread({"IMP": ([run, other], "ticket")})
    assert "IMP: 95.90% on average over 2 seeds (94.00% to 97.80%) at 12.5% of the weights" in spread


def test_the_readout_of_densities_finds_the_peak_and_counts_only_gaps_beyond_the_noise():
    """08's readout: the peak density, the densities within the interval of a difference of it (±0.6
    points near 95% on 10,000 images), and the sparsest one's fall."""
    from lthkit.course.readouts import best_density

    text = best_density({0.05: 0.80, 0.1: 0.89, 0.3: 0.944, 0.5: 0.957, 0.7: 0.959, 0.9: 0.94}, 10_000)
    assert "your most accurate mask keeps 70% of each layer: 95.90%" in text
    assert "keeping 50%." in text and "30%" not in text.split("\n")[1]
    assert "keeping 5%: 80.00%, 15.90 points below it" in text
    alone = best_density({0.1: 0.90, 0.5: 0.95}, 10_000)
    assert "every other density is below it by more than" in alone


def test_every_stop_capped_tells_a_run_whose_budget_set_every_early_stop():
    from lthkit.course.readouts import every_stop_capped

    capped = _run({"ticket": [0.97, 0.975], "reinit": [0, 0.96]}, weights=(1.0, 0.5))
    assert every_stop_capped(capped)
    capped.rounds[1].arms["reinit"].early_stop_iteration = 0
    assert not every_stop_capped(capped)
