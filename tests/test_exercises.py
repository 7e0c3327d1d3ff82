"""The exercise checkers: typed answers are read in every usual form, tolerances refuse the
answers that classic mistakes give, and each such answer is told its mistake.

The right values and the wrong values of each mistake are written out below, so that a looser
tolerance or a missing normalisation makes a test fail."""

import numpy as np
import pytest
import torch

from lthkit.course.exercises import (EXERCISES, Number, _layer_weights_left, _model_weights_left, in_unit, read_name,
                              read_number, read_whole, said_none, verdict)
from lthkit.results import ArmResult, CurvePoint, Results, RoundResult

# ---------------------------------------------------------------------------------------------
# The reader


@pytest.mark.parametrize("typed,value,decimals,percent", [
    (13, 13.0, 0, False), (13.0, 13.0, 0, False), ("13", 13.0, 0, False), (" 13 ", 13.0, 0, False),
    (" 10.8 ", 10.8, 1, False), ("10.80", 10.8, 1, False), ("10.8%", 10.8, 1, True), ("10.8 %", 10.8, 1, True),
    ("0.512", 0.512, 3, False), ("1e-3", 0.001, 3, False), ("55,000", 55000.0, 0, False),
    ("266 610", 266610.0, 0, False), ("1_000.5", 1000.5, 1, False), ("-2", -2.0, 0, False),
    (np.float64(0.25), 0.25, 2, False), (np.int64(917), 917.0, 0, False), (torch.tensor(25.0), 25.0, 0, False),
    ("28823/266200", 28823 / 266200, 6, False), (28823 / 266200, 28823 / 266200, 6, False),
])
def test_numbers_are_read_in_every_usual_form(typed, value, decimals, percent):
    assert read_number(typed) == Number(pytest.approx(value), decimals, percent)


@pytest.mark.parametrize("typed", [True, False, None, "", "abc", "10.8.1", "1,00", "nan", "inf", "1/0", [13],
                                   "13 iterations", "%"])
def test_booleans_and_text_that_is_not_a_number_are_not_numbers(typed):
    assert read_number(typed) is None


def test_whole_numbers_names_and_none():
    assert [read_whole(a) for a in (13, 13.0, "13", " 13 ", "13.5", "13%", True, "none")] == [
        13, 13, 13, 13, None, None, None, None]
    assert {read_name(a) for a in ("FC1", " fc1", "fc1.weight", "Fc1.Weight ")} == {"fc1"}
    assert {read_name(a) for a in ("Conv-2", "conv 2", "CONV_2", "conv2")} == {"conv2"}
    assert read_name(" REINIT ") == "reinit" and read_name(3) is None
    assert all(said_none(a) for a in ("none", "None", "NONE", " none "))
    assert not said_none(None) and not said_none("no")


@pytest.mark.parametrize("typed,unit,value,decimals", [
    # percentage questions: a % sign changes nothing; below 1 without one is a fraction
    ("10.8%", "percent", 10.8, 1), (10.8, "percent", 10.8, 1), (0.108, "percent", 10.8, 1),
    ("0.108%", "percent", 0.108, 3), (1, "percent", 1, 0),
    # fraction questions: a % sign divides by 100; above 1 without one is a percentage
    ("51.2%", "fraction", 0.512, 3), (51.2, "fraction", 0.512, 3), (0.512, "fraction", 0.512, 3),
    (1, "fraction", 1, 0), ("0.512%", "fraction", 0.00512, 5),
    # plain numbers: a % sign divides by 100
    ("0.1%", "number", 0.001, 3), (917, "number", 917, 0),
])
def test_the_unit_rule(typed, unit, value, decimals):
    got, got_decimals = in_unit(read_number(typed), unit)
    assert got == pytest.approx(value) and got_decimals == decimals


# ---------------------------------------------------------------------------------------------
# Numeric exercises without context: (right answers in every accepted form, wrong answers with a
# word the message must contain)

NUMERIC = {
    "10.csr-crossover": (
        [3.0, "3.0%", 0.030, 2.997, "3"],
        [(3.1, "row pointers"), (1.4, "64-bit indices"), (24.9, "one byte per weight"), (3.2, "n/8 + 4·kept")],
    ),
    "09.weights-after-4": (
        [13.2, "13.2%", 0.132, 13.21, "13.21"],
        [(12.96, "every kind at 40%"), (2.56, "0.4⁴"), (41.0, "the head's share"), (13.0, "one decimal"),
         (20.0, "each kind keeps")],
    ),
    "08.mask-bytes": (
        [33275, "33,275", 33275.0, "33 275"],
        [(266200, "one byte per weight"), (1064800, "4 bytes per weight"), (33326.25, "counts the biases"),
         (32.5, "in KiB"), (4160, "one bit per prunable weight")],
    ),
    "00.train-size": (
        [55000, 55000.0, "55000", " 55000 ", "55,000", "55 000"],
        [(60000, "validation"), (50000, "test set"), (70000, "test images"), (54999, "holds some out"),
         (55000.5, "holds some out"), ("55000 images", "give a number")],
    ),
    "00.epoch-iterations": (  # 55,000 / 60 = 916.67, rounded up: 917
        [917, 917.0, "917", " 917 "],
        [(918, "rounding up"), (916, "partial batch"), (916.67, "before rounding"), ("916.7", "before rounding"),
         (1000, "60,000"), (917.5, "rounding up")],
    ),
    "01.fc1-weights": (
        [235200, "235,200", "235200"],
        [(235500, "biases"), (784, "one unit"), (300, "number of units"), (78400, "second layer"),
         (266200, "every layer"), (235201, "28 x 28")],
    ),
    "01.total-parameters": (
        [266610, "266,610", 266610.0],
        [(266200, "weights alone"), (266600, "the output layer"), (266310, "biases of fc1"),
         (266210, "fc1 and fc2"), (235200, "first layer's"), (266611, "one bias per unit")],
    ),
    "02.fc1-after-3-rounds": (  # 0.8³ = 0.512; two decimals at least, within ±0.005
        [0.512, "0.512", " 0.512 ", 0.51, "0.5120", 51.2, "51.2", "51.2%", "51.2 %", 51, "51%"],
        [(0.4, "multiply, do not subtract"), (40, "multiply, do not subtract"), ("40%", "do not subtract"),
         (0.8, "one round"), (80, "one round"), (0.64, "two rounds"), (0.4096, "four rounds"),
         (0.488, "share pruned"), (0.008, "pruned 20%"), (0.5, "right only to one decimal; give at least 2 decimals"),
         (0.52, "multiply the"),
         (0.514, "multiply the"), (0.508, "multiply the"), ("0.512%", "factor of 100"), (True, "give a number")],
    ),
    "03.weights-after-10": (  # 28,823 / 266,200 = 10.8276%; at least one decimal, within ±0.05
        [10.8, 10.83, 10.828, 10.8276, 100 * 28823 / 266200, "10.8", " 10.8 ", "10.8%", "10.8 %", "10.83%",
         0.108, "0.1083"],
        [(10.737, "output layer keeps 90% per round, not 80%"), (10.74, "not 80%"), (10.7, "not 80%"),
         (0.10737, "not 80%"), (10.9, "weigh each by its size"), (10.84, "weigh each by its size"),
         (10.82, "weigh each by its size"), (11, "nearest whole number; give at least one decimal"),
         (10.81, "266,610"), (34.87, "output layer alone"),
         (18.78, "averages"), (13.52, "9 rounds"), (8.68, "11 rounds"), (89.17, "share pruned"),
         (10.8281, "unrounded"), ("0.108%", "factor of 100"), ("ten", "give a number")],
    ),
    "05.conv6-weights-after-5": (  # 38.6705%; at least one decimal, within ±0.05
        [38.7, 38.67, 38.6705, 38.67049, "38.7", "38.7%", " 38.7 % ", 0.387, "0.3867"],
        [(38.57, "plain average of 0.85⁵ and 0.8⁵"), (38.6, "plain average"), (38.6, "output layer at 20%"),
         (38.64, "output layer at 20%"), (38.654, "output layer at 15%"), (38.65, "leaving out the output layer"),
         (38.646, "biases included"), (38.51, "swaps the rates"), (44.37, "0.85⁵"), (32.77, "0.8⁵"),
         (45.4, "averages the three"), (46.68, "4 rounds"), (32.07, "6 rounds"), (61.33, "share pruned"),
         (38.6704, "unrounded"), (39, "one decimal"), (38.8, "weigh each"), (38.76, "weigh each"),
         (38.671, "weigh each")],
    ),
    "06.finetune-lr": (
        [0.001, "0.001", "1e-3", "1E-3", 0.1 * 0.1 * 0.1, "0.1%"],
        [(0.1, "starts with"), (0.01, "one drop"), (0.0001, "three drops"), (0.0012, "LeNet-300-100"),
         (0, "would not train"), (0.002, "each of the schedule's drops"), (0.0011, "each of the schedule's")],
    ),
    "06.instability-by-hand": (  # 35 − (9 + 11) / 2 = 25 points, within ±0.05
        [25, 25.0, "25", " 25 ", "25%", "25 %", 0.25],
        [(26, "first end"), (24, "last end"), (35, "highest error itself"), (18, "all five"),
         (10, "mean of the two ends"), (25.1, "subtract the mean"), (25.06, "subtract the mean"),
         ("0.25%", "factor of 100")],
    ),
}


@pytest.mark.parametrize("name,answer", [(n, a) for n, (right, _) in NUMERIC.items() for a in right])
def test_right_answers_pass_in_every_form(name, answer):
    v = verdict(name, answer)
    assert v.correct, (name, answer, v.message)


@pytest.mark.parametrize("name,answer,words", [(n, a, w) for n, (_, wrong) in NUMERIC.items() for a, w in wrong])
def test_wrong_answers_are_refused_and_told_their_mistake(name, answer, words):
    v = verdict(name, answer)
    assert not v.correct and words in v.message, (name, answer, v.message)


def test_the_exact_values_and_the_mistakes_around_them():
    lenet = _layer_weights_left(0.2, 10, 235200) + _layer_weights_left(0.2, 10, 30000) + _layer_weights_left(
        0.1, 10, 1000)
    assert lenet == 25254 + 3221 + 348 == 28823
    assert 100 * lenet / 266200 == pytest.approx(10.8276, abs=1e-4)
    assert 100 * 0.8 ** 10 == pytest.approx(10.7374, abs=1e-4)  # more than 0.05 below: refused
    assert 100 * _model_weights_left("conv6", 5) == pytest.approx(38.6705, abs=1e-4)
    conv, fc, out = 1144512, 1114112, 2560
    assert 100 * (conv * 0.85 ** 5 + fc * 0.8 ** 5 + out * 0.8 ** 5) / (conv + fc + out) == pytest.approx(
        38.6407, abs=1e-4)  # output layer at 20%: 0.03 below, refused at two decimals (38.64) and one (38.6)
    assert 100 * (0.85 ** 5 + 0.8 ** 5) / 2 == pytest.approx(38.5693, abs=1e-4)


def test_the_hint_never_contradicts_a_right_answer_given_as_a_percent():
    v = verdict("02.fc1-after-3-rounds", 51.2)
    assert v.correct and "subtract" not in v.message


def test_answers_not_given_yet_and_unknown_exercises():
    assert verdict("03.weights-after-10", None).message.startswith("not answered yet")
    with pytest.raises(KeyError, match="no exercise"):
        verdict("99.nothing", 1)


# ---------------------------------------------------------------------------------------------
# Exercises that judge the learner's own run, on hand-built results


def arm(early, end=None, stop=100):
    return ArmResult(test_accuracy=early if end is None else end, early_stop_iteration=stop,
                     early_stop_test_accuracy=early, early_stop_val_loss=0.1, curve=[])


def run(rows):
    """Results from one dict of arms per round (round 0 first)."""
    return Results({}, [RoundResult(i, 0.8 ** i, {}, arms) for i, arms in enumerate(rows)])


@pytest.fixture
def fifteen_rounds():
    """Best ticket at round 13; reinit first more than a point behind at round 11."""
    rows = [{"ticket": arm(0.95)}]
    for i in range(1, 16):
        ticket = 0.99 if i == 13 else 0.96
        rows.append({"ticket": arm(ticket), "reinit": arm(ticket - (0.02 if i >= 11 else 0.0)),
                     "random": arm(ticket - 0.005)})
    return run(rows)


def test_round_numbers_typed_as_text_pass(fifteen_rounds):
    for answer in (13, 13.0, "13", " 13 "):
        assert verdict("03.best-round", answer, results=fifteen_rounds).correct, answer
    for answer in (11, 11.0, "11", " 11 "):
        assert verdict("04.first-gap", answer, results=fifteen_rounds).correct, answer


def test_best_round_mistakes():
    results = run([{"ticket": arm(0.97)}, {"ticket": arm(0.975)}, {"ticket": arm(0.98, end=0.95)},
                   {"ticket": arm(0.978, end=0.99)}, {"ticket": arm(0.96)}])
    assert verdict("03.best-round", "2", results=results).correct
    said = {a: verdict("03.best-round", a, results=results) for a in (3, 1, 7, "none", 2.5, "round 2")}
    assert not any(v.correct for v in said.values())
    assert "end of training" in said[3].message
    assert "compare early_stop_test_accuracy" in said[1].message
    assert all("give a round number, from 0 to 4" in said[a].message for a in (7, "none", 2.5, "round 2"))


def test_best_round_accepts_every_tied_round():
    results = run([{"ticket": arm(0.97)}, {"ticket": arm(0.98)}, {"ticket": arm(0.98)}])
    assert all(verdict("03.best-round", str(r), results=results).correct for r in (1, 2))


def first_gap_run():
    """Round 2 is the answer; each other round is a known mistake."""
    def rnd(ticket, reinit, random=0.979, ticket_end=None, reinit_end=None):
        return {"ticket": arm(ticket, ticket_end), "reinit": arm(reinit, reinit_end), "random": arm(random)}

    return run([
        {"ticket": arm(0.97)},
        rnd(0.98, 0.975, ticket_end=0.98, reinit_end=0.96),  # behind 0.5 point; 2 points at the end of training
        rnd(0.98, 0.965),  # the first gap over one point
        rnd(0.98, 0.96),  # a later one
        rnd(0.97, 0.99),  # reinit ahead
        rnd(0.97, 0.965, random=0.95),  # the random mask first falls behind
        rnd(0.97, 0.965),  # behind by half a point
    ])


@pytest.mark.parametrize("answer,words", [
    (1, "end of training"), (3, "earlier round"), (4, "ahead of the ticket"), (5, "random mask"),
    (6, "by 0.50 points, not more than one"), (0, "give a round from 1 to 6"), ("seven", "give a round"),
    ("none", "does fall more than one point behind"),
])
def test_first_gap_mistakes(answer, words):
    results = first_gap_run()
    assert verdict("04.first-gap", 2, results=results).correct
    v = verdict("04.first-gap", answer, results=results)
    assert not v.correct and words in v.message, v.message


def test_first_gap_none_in_any_case_when_reinit_never_falls_behind():
    results = run([{"ticket": arm(0.97)}, {"ticket": arm(0.98), "reinit": arm(0.975)}])
    assert all(verdict("04.first-gap", a, results=results).correct for a in ("none", "None", "NONE", " none "))
    assert not verdict("04.first-gap", 1, results=results).correct


def test_worse_control():
    random_worse = run([{"ticket": arm(0.97)}, {"ticket": arm(0.98), "reinit": arm(0.95, end=0.90),
                                               "random": arm(0.93, end=0.94)}])
    for answer in ("random", "Random", " RANDOM "):
        assert verdict("04.worse-control", answer, results=random_worse).correct, answer
    assert "end of training" in verdict("04.worse-control", "reinit", results=random_worse).message
    assert "not a control" in verdict("04.worse-control", "Ticket", results=random_worse).message
    assert "give 'reinit' or 'random'" in verdict("04.worse-control", "dense", results=random_worse).message
    reinit_worse = run([{"ticket": arm(0.97)}, {"ticket": arm(0.98), "reinit": arm(0.90), "random": arm(0.93)}])
    for answer in ("reinit", " REINIT ", "Re-init"):
        assert verdict("04.worse-control", answer, results=reinit_worse).correct, answer
    v = verdict("04.worse-control", "random", results=reinit_worse)
    assert not v.correct and "last round's early-stop accuracies" in v.message


def test_early_stop_within_one_evaluation_and_its_mistakes():
    def point(it, val_loss, val_acc, test_acc, train_loss):
        return CurvePoint(it, train_loss, val_loss, val_acc, test_acc)

    curve = [point(0, 2.0, 0.1, 0.1, 2.0), point(100, 0.5, 0.90, 0.90, 0.5), point(200, 0.3, 0.95, 0.95, 0.3),
             point(300, 0.35, 0.96, 0.96, 0.2), point(400, 0.4, 0.97, 0.96, 0.1), point(500, 0.45, 0.96, 0.97, 0.05)]
    result = ArmResult.from_curve(curve)
    assert result.early_stop_iteration == 200
    for answer in (200, "200", " 200 ", 200.0, 100, 300, 250):
        assert verdict("01.early-stop", answer, result=result).correct, answer
    said = {a: verdict("01.early-stop", a, result=result) for a in (400, 500, 0, "20%", "late")}
    assert not any(v.correct for v in said.values())
    assert "validation accuracy is highest" in said[400].message
    assert "training ends" in said[500].message and "test accuracy is highest" in said[500].message
    assert "smallest validation loss" in said[0].message
    assert "give an iteration number" in said["20%"].message and "give an iteration" in said["late"].message


def test_early_stop_one_evaluation_before_the_end_refuses_the_end():
    def point(it, val_loss, test_acc, train_loss):
        return CurvePoint(it, train_loss, val_loss, 0.9, test_acc)

    curve = [point(0, 2.0, 0.1, 2.0), point(100, 0.5, 0.90, 0.5), point(200, 0.4, 0.95, 0.3),
             point(300, 0.35, 0.97, 0.2), point(400, 0.3, 0.96, 0.1), point(500, 0.32, 0.96, 0.05)]
    result = ArmResult.from_curve(curve)
    assert result.early_stop_iteration == 400
    for answer in (400, 420, 450, 350, 300):
        assert verdict("01.early-stop", answer, result=result).correct, answer
    for answer in (500, 490, "500"):
        v = verdict("01.early-stop", answer, result=result)
        assert not v.correct and "training ends" in v.message, (answer, v.message)


def test_global_hardest_hit_accepts_the_layer_in_any_case():
    from lthkit.models import build_model
    from lthkit.course.widgets import one_shot_mask

    model = build_model("lenet300", (1, 28, 28), seed=0)
    report = one_shot_mask(model, 0.9, "global").report()
    kept = {n.removesuffix(".weight"): row["weights_remaining"] for n, row in report.items()}
    hardest, easiest = min(kept, key=kept.get), max(kept, key=kept.get)
    middle = next(n for n in kept if n not in (hardest, easiest))
    for answer in (hardest, hardest.upper(), f" {hardest}", f"{hardest}.weight", f"{hardest.upper()} "):
        assert verdict("02.global-hardest-hit", answer, model=model).correct, answer
    assert "largest share" in verdict("02.global-hardest-hit", easiest.upper(), model=model).message
    assert "another layer keeps less" in verdict("02.global-hardest-hit", middle, model=model).message
    assert "give a layer's name" in verdict("02.global-hardest-hit", "conv1", model=model).message


def test_most_fc_accepts_the_name_in_any_spelling():
    for answer in ("conv2", "Conv-2", "conv 2", " CONV_2 "):
        assert verdict("05.most-fc", answer).correct, answer
    six = verdict("05.most-fc", "Conv-6")
    assert not six.correct and "49.4%" in six.message and "another network has more" in six.message
    assert "give 'conv2', 'conv4' or 'conv6'" in verdict("05.most-fc", 2).message


def test_earliest_stable():
    lines = {0: [0.5, 0.8, 0.5], 20: [0.3, 0.31, 0.3], 50: [0.2, 0.2, 0.2]}
    for answer in (20, 20.0, "20", " 20 "):
        assert verdict("06.earliest-stable", answer, lines=lines).correct, answer
    said = {a: verdict("06.earliest-stable", a, lines=lines) for a in (50, 0, "none", 30, "twenty")}
    assert not any(v.correct for v in said.values())
    assert "earlier rewind point is too" in said[50].message
    assert "rises 30.0 points" in said[0].message and "not stable" in said[0].message
    assert "at least one of your rewind points is stable" in said["none"].message
    assert "give an iteration (one of [0, 20, 50])" in said[30].message and "one of" in said["twenty"].message
    unstable = {0: [0.5, 0.8, 0.5], 20: [0.3, 0.4, 0.3]}
    assert all(verdict("06.earliest-stable", a, lines=unstable).correct for a in ("none", "None", " NONE "))
    assert "answer 'none'" in verdict("06.earliest-stable", 20, lines=unstable).message


def test_imp_trainings_counts_the_dense_training_and_every_round():
    """fc1 keeps 2.25% of its weights after 17 rounds of 20%, 1.80% after 18: 18 rounds and the dense
    training, 19 trainings in all."""
    for answer in (19, "19", 19.0):
        assert verdict("07.imp-trainings", answer).correct, answer
    assert "4,237 of fc1's 235,200" in verdict("07.imp-trainings", 19).message
    said = {a: verdict("07.imp-trainings", a) for a in (18, 17, 20, "many")}
    assert not any(v.correct for v in said.values())
    assert "the dense network is trained once" in said[18].message
    assert "2.25% of its weights, above 2%" in said[17].message
    assert "0.8 ** r" in said[20].message and "whole number" in said["many"].message


def test_every_exercise_of_the_module_is_tested_here():
    own = {n for n, fn in EXERCISES.items() if fn.__module__ == "lthkit.course.exercises"}
    tested = set(NUMERIC) | {"01.early-stop", "02.global-hardest-hit", "03.best-round", "04.first-gap",
                             "04.worse-control", "05.most-fc", "06.earliest-stable", "07.imp-trainings"}
    assert own == tested
