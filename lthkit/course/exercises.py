"""The course's exercises and their checkers.

Each notebook asks a question, the learner sets ``answer = ...`` and runs
``check("03.best-round", answer, results=results)``. The checker computes the right answer
itself, from first principles or from the learner's own run (passed as context), so a
notebook never prints the solution in a code cell; solutions sit in a collapsed cell.

Typed answers go through one reader (``read_number``, ``read_whole``, ``read_name``), so that
``13``, ``13.0``, ``"13"`` and ``" 13 "`` are one answer, and so are ``"FC1"`` and ``"fc1"``. A
wrong answer that matches a known mistake is told that mistake; any other gets a neutral hint.

Numbers are judged by ``judge_number``: an answer counts to the decimals it is given with (10.8
stands for 10.75 to 10.85), never looser than the exercise's tolerance, and a question asking for
a percentage or a fraction reads the other too (``in_unit``: 0.108 for 10.8%, 51.2 for 0.512).
"""

from __future__ import annotations

import functools
import itertools
import math
import numbers
import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from lthkit.course import code_exercises, quizzes  # noqa: F401  (importing them registers their exercises)
from lthkit.course import progress
from lthkit.data import dataset_info, iterations_per_epoch
from lthkit.course.verdicts import EXERCISES, Verdict, exercise
from lthkit.course.fallback import learners_own


def verdict(name: str, answer, **context) -> Verdict:
    """Judge ``answer`` to exercise ``name``."""
    if name not in EXERCISES:
        raise KeyError(f"no exercise {name!r}; known: {', '.join(sorted(EXERCISES))}")
    answer = learners_own(answer)
    if answer is None:
        return Verdict(False, "not answered yet: set your answer in the cell above and run both cells again.")
    return EXERCISES[name](answer, **context)


def check(name: str, answer, **context) -> None:
    """Print the verdict on ``answer`` to exercise ``name`` (the checker cell of a notebook), and
    record it in the notebook's output folder (``lthkit.course.progress``)."""
    judged = verdict(name, answer, **context)
    print(judged)
    progress.record(name, judged)


# ---------------------------------------------------------------------------------------------
# Reading typed answers

MAX_DECIMALS = 6  # more decimals than this are float noise, not precision

_PLAIN = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)(e[+-]?\d+)?")
_GROUPED = re.compile(r"[+-]?\d{1,3}([,_ ]\d{3})+(\.\d*)?")  # 55,000  266 610  1_000.5


@dataclass(frozen=True)
class Number:
    """A number as the learner typed it.

    ``decimals`` is how many decimals it carries: those of the shortest form of its value
    (``10.80`` and ``10.8`` both carry 1, ``55000.0`` carries 0), at most ``MAX_DECIMALS``;
    a ratio such as ``"28823/266200"`` carries ``MAX_DECIMALS``. ``percent`` is whether it
    ended in a % sign."""

    value: float
    decimals: int
    percent: bool


def _decimals(value: float) -> int:
    exponent = Decimal(repr(value)).normalize().as_tuple().exponent
    return min(MAX_DECIMALS, max(0, -exponent))


def read_number(answer) -> Number | None:
    """Read a typed number, or None if ``answer`` is not one.

    Accepted: an int or a float (numpy and 0-d torch scalars too), or text that, stripped of
    spaces, is a decimal number (``"13"``, ``" 10.8 "``, ``"1e-3"``, ``"55,000"`` with
    thousands grouped by commas, spaces or underscores) or a ratio of two (``"28823/266200"``),
    optionally followed by ``%``. Booleans, NaN and infinities are not numbers."""
    if isinstance(answer, bool) or answer is None:
        return None
    if not isinstance(answer, (str, numbers.Real)) and hasattr(answer, "item"):
        try:
            answer = answer.item()
        except (TypeError, ValueError, RuntimeError):
            return None
        return read_number(answer)
    if isinstance(answer, numbers.Real):
        value = float(answer)
        return Number(value, _decimals(value), False) if math.isfinite(value) else None
    if not isinstance(answer, str):
        return None
    text = answer.strip().lower()
    percent = text.endswith("%")
    if percent:
        text = text[:-1].strip()
    if _GROUPED.fullmatch(text):
        text = re.sub(r"[,_ ]", "", text)
    parts = [p.strip() for p in text.split("/")]
    if not 1 <= len(parts) <= 2 or not all(_PLAIN.fullmatch(p) for p in parts):
        return None
    if len(parts) == 2:
        if float(parts[1]) == 0:
            return None
        value, decimals = float(parts[0]) / float(parts[1]), MAX_DECIMALS
    else:
        value = float(parts[0])
        decimals = _decimals(value)
    return Number(value, decimals, percent) if math.isfinite(value) else None


def read_whole(answer) -> int | None:
    """A whole number typed as ``13``, ``13.0``, ``"13"`` or ``" 13 "``; None otherwise (also with a % sign)."""
    number = read_number(answer)
    if number is None or number.percent or not number.value.is_integer():
        return None
    return int(number.value)


def read_name(answer) -> str | None:
    """A name, lower-cased, without spaces, hyphens or underscores, and without a trailing
    ``.weight``: ``"FC1"``, ``" fc1"`` and ``"fc1.weight"`` are ``"fc1"``; ``"Conv-2"`` and
    ``"conv 2"`` are ``"conv2"``. None if ``answer`` is not text."""
    if not isinstance(answer, str):
        return None
    return re.sub(r"[\s\-_]+", "", answer.lower()).removesuffix(".weight")


def said_none(answer) -> bool:
    """Whether the answer is the word "none", in any case and with any spaces around it."""
    return read_name(answer) == "none"


def in_unit(number: Number, unit: str) -> tuple[float, int]:
    """``number``'s value and decimals in the unit the question asks for.

    - ``"number"``: a plain number; a % sign divides by 100 (``"0.1%"`` is 0.001).
    - ``"percent"``: a % sign changes nothing (``"10.8%"`` is 10.8); without one, a number
      below 1 is read as a fraction and multiplied by 100 (0.108 is 10.8%), a number from 1 up
      is a percentage.
    - ``"fraction"``: a % sign divides by 100 (``"51.2%"`` is 0.512); without one, a number
      above 1 is read as a percentage and divided by 100 (51.2 is 0.512), a number up to 1 is
      a fraction.

    Multiplying by 100 takes two decimals off, dividing by 100 adds two."""
    value, decimals, percent = number.value, number.decimals, number.percent
    if unit == "number":
        return (value / 100, decimals + 2) if percent else (value, decimals)
    if unit == "percent":
        if not percent and abs(value) < 1:
            return value * 100, max(0, decimals - 2)
        return value, decimals
    if unit == "fraction":
        if percent or abs(value) > 1:
            return value / 100, decimals + 2
        return value, decimals
    raise ValueError(f"unknown unit {unit!r}")


@dataclass(frozen=True)
class Mistake:
    """A wrong answer that a known mistake gives: ``value`` (in the question's unit), and what to
    tell the learner, a sentence that follows the answer: "10.737 ``is 0.8¹⁰, ...``"."""

    value: float
    says: str


def judge_number(answer, exact: float, *, unit: str, tolerance: float, hint: str,
                 mistakes: Iterable[Mistake] = (), min_decimals: int = 0, suffix: str | None = None) -> Verdict:
    """Judge a typed number against ``exact`` (both in ``unit``, see ``in_unit``).

    The answer is right when it is within half a unit of its last decimal of ``exact``, and
    within ``tolerance``: with tolerance 0.05, 10.8 and 10.83 are right for 10.8276, and 10.9,
    10.84 and 10.737 are not. An answer that would be right but has fewer than
    ``min_decimals`` decimals is told to give more.

    A wrong answer is matched against the ``Mistake``s, each within half a unit of the
    answer's last decimal (at least ``min_decimals`` decimals): an exact match is told its
    mistake alone, otherwise the two nearest matches are told. Failing that, a percentage or
    fraction a factor of 100 off is told so (a % sign where none belongs, or one missing);
    any other answer gets the neutral ``hint``."""
    number = read_number(answer)
    if number is None:
        return Verdict(False, f"give a number, not {answer!r}.")
    if suffix is None:
        suffix = "%" if unit == "percent" else ""
    value, decimals = in_unit(number, unit)
    shown = f"{number.value:g}" + ("%" if number.percent else "")
    if value != number.value:
        shown = f"{shown}, read as {value:g}{suffix},"
    half = 0.5 * 10.0 ** -decimals
    slack = 1e-9 * max(1.0, abs(exact))  # float rounding, never a decimal's worth
    if abs(value - exact) <= min(tolerance, half) + slack:
        return Verdict(True, f"{value:g}{suffix} it is.")
    if decimals < min_decimals and abs(value - exact) <= half + slack:
        def places(n: int) -> str:
            return "the nearest whole number" if n == 0 else "one decimal" if n == 1 else f"{n} decimals"
        return Verdict(False, f"{shown} is right only to {places(decimals)}; give at least {places(min_decimals)}.")
    reach = 0.5 * 10.0 ** -max(decimals, min_decimals)
    near = sorted((abs(value - m.value), i, m) for i, m in enumerate(mistakes)
                  if abs(value - m.value) <= reach + 1e-9 * max(1.0, abs(m.value)))
    if near:
        exact_match = [m for d, _, m in near if d <= 1e-9 * max(1.0, abs(m.value))]
        told = exact_match[:1] or [m for _, _, m in near[:2]]
        return Verdict(False, f"{shown} " + " Or it ".join(m.says for m in told))
    if unit in ("percent", "fraction") and any(abs(value * f - exact) <= half * abs(f) + slack for f in (100, 0.01)):
        return Verdict(False, f"{shown} is a factor of 100 off: a percentage is a fraction times 100 "
                              "(0.25 is 25%).")
    return Verdict(False, hint)


# ---------------------------------------------------------------------------------------------
# Pruning arithmetic the checkers share

def _layer_weights_left(rate: float, rounds: int, size: int) -> int:
    """Weights left in a layer of ``size`` after ``rounds`` rounds, each pruning ``rate`` of the
    alive weights, rounded to whole weights (as ``count_to_prune`` does)."""
    alive = size
    for _ in range(rounds):
        alive -= math.floor(rate * alive + 0.5)
    return alive


@functools.lru_cache(maxsize=None)
def _model_weights_left(model: str, rounds: int) -> float:
    """Fraction of a model's prunable weights left after ``rounds`` rounds at the paper's rates."""
    from lthkit.masks import Mask, layer_rates, prune_by_magnitude
    from lthkit.models import MODELS, build_model

    net = build_model(model, (3, 32, 32))
    mask = Mask.ones_like(net)
    rates = layer_rates(net, MODELS[model].paper.prune_rates)
    for _ in range(rounds):
        mask = prune_by_magnitude(net, mask, rates)
    return mask.weights_remaining()


@functools.lru_cache(maxsize=None)
def _weights_by_kind(model: str) -> dict[str, int]:
    """A CIFAR model's prunable weights per kind of layer ("conv", "fc", "output")."""
    from lthkit.models import build_model, prunable_layers

    net = build_model(model, (3, 32, 32))
    params = dict(net.named_parameters())
    sizes: dict[str, int] = {}
    for name, kind in prunable_layers(net).items():
        sizes[kind] = sizes.get(kind, 0) + params[name].numel()
    return sizes


@functools.lru_cache(maxsize=None)
def _parameter_count(model: str) -> int:
    """All of a CIFAR model's parameters, biases and batch-norm included."""
    from lthkit.models import build_model, count_parameters

    return count_parameters(build_model(model, (3, 32, 32)))["total"]


LENET = {"fc1": 784 * 300, "fc2": 300 * 100, "output": 100 * 10}  # LeNet-300-100's weights per layer
LENET_BIASES = {"fc1": 300, "fc2": 100, "output": 10}


# ---------------------------------------------------------------------------------------------
# Notebook 00

@exercise("00.train-size")
def _train_size(answer) -> Verdict:
    info = dataset_info("mnist")
    return judge_number(answer, info.train_size, unit="number", tolerance=0, mistakes=[
        Mistake(info.train_pool, "is all of MNIST's training images: the paper holds some of them out for "
                                 "validation."),
        Mistake(info.train_pool - info.test_size, "takes out as many images as the test set has (10,000): "
                                                  "the test set is separate, and validation takes fewer."),
        Mistake(info.train_pool + info.test_size, "counts the test images too."),
    ], hint="MNIST has 60,000 training images, and the paper holds some out for validation.")


@exercise("00.epoch-iterations")
def _epoch_iterations(answer) -> Verdict:
    images = dataset_info("mnist").train_size
    exact = iterations_per_epoch(images, 60)
    return judge_number(answer, exact, unit="number", tolerance=0, mistakes=[
        Mistake(exact - 1, "drops the last, partial batch: it holds fewer than 60 images but is an "
                           "iteration too, so round up."),
        Mistake(images / 60, "is the division before rounding: iterations are whole, and the last, partial "
                             "batch is one, so round up."),
        Mistake(dataset_info("mnist").train_pool / 60, "divides all 60,000 of MNIST's training images: "
                                                       "the paper trains on fewer (exercise 1)."),
    ], hint="divide the training images (exercise 1) by the batch size (60), rounding up.")


# ---------------------------------------------------------------------------------------------
# Notebook 01

@exercise("01.fc1-weights")
def _fc1_weights(answer) -> Verdict:
    return judge_number(answer, LENET["fc1"], unit="number", tolerance=0, mistakes=[
        Mistake(LENET["fc1"] + LENET_BIASES["fc1"], "counts the 300 biases too: the question asks for weights."),
        Mistake(784, "is one unit's weights: there are 300 units."),
        Mistake(300, "is the number of units: each has one weight per pixel."),
        Mistake(784 * 100, "uses 100 units: that is the second layer; the first has 300."),
        Mistake(sum(LENET.values()), "is every layer's weights: the question asks for the first layer's."),
    ], hint="each of the 300 units sees every one of the 28 x 28 pixels.")


@exercise("01.total-parameters")
def _total_parameters(answer) -> Verdict:
    weights, biases = sum(LENET.values()), LENET_BIASES
    layer = {"fc1": "fc1", "fc2": "fc2", "output": "the output layer"}
    mistakes = [Mistake(weights, f"is the weights alone: add one bias per unit ({sum(biases.values())}).")]
    for n in (1, 2):
        for missing in itertools.combinations(biases, n):
            have = weights + sum(biases[k] for k in biases if k not in missing)
            mistakes.append(Mistake(have, f"leaves out the biases of {' and '.join(layer[k] for k in missing)}: every "
                                         "unit has one."))
    mistakes.append(Mistake(LENET["fc1"], "is the first layer's weights: add the other layers and the biases."))
    return judge_number(answer, weights + sum(biases.values()), unit="number", tolerance=0, mistakes=mistakes,
                        hint="add each layer's weights and biases (one bias per unit).")


@exercise("01.early-stop")
def _early_stop(answer, *, result) -> Verdict:
    curve = result.curve
    spacing = curve[1].iteration - curve[0].iteration if len(curve) > 1 else 0
    number = read_number(answer)
    if number is None or number.percent:
        return Verdict(False, f"give an iteration number, not {answer!r}.")
    value, stop, end = number.value, result.early_stop_iteration, curve[-1].iteration

    def nearer(it: int) -> bool:
        return it != stop and abs(value - it) <= spacing / 2 and abs(value - it) < abs(value - stop)

    # Within one evaluation of the stop counts (a reading of the figure), but the end of training does not.
    if abs(value - stop) <= spacing and not nearer(end):
        return Verdict(True, f"early stopping stopped at iteration {stop}.")
    mistakes = [
        (max(curve, key=lambda p: p.val_accuracy).iteration, "validation accuracy is highest"),
        (max(curve, key=lambda p: p.test_accuracy).iteration, "test accuracy is highest"),
        (min(curve, key=lambda p: p.train_loss).iteration, "training loss is lowest"),
        (end, "training ends"),
    ]
    near = [what for it, what in mistakes if nearer(it)]
    if near:
        return Verdict(False, f"iteration {value:g} is where {' and '.join(near)}: early stopping takes the "
                              "evaluation with the smallest validation loss.")
    return Verdict(False, "look for the evaluation with the smallest validation loss, not the highest accuracy.")


# ---------------------------------------------------------------------------------------------
# Notebook 02

@exercise("02.fc1-after-3-rounds")
def _fc1_after_rounds(answer) -> Verdict:
    return judge_number(answer, 0.8 ** 3, unit="fraction", tolerance=0.005, min_decimals=2, mistakes=[
        Mistake(1 - 3 * 0.2, "is 1 − 3 × 0.2: each round prunes 20% of what is left, not of the original, "
                             "so multiply, do not subtract."),
        Mistake(0.8, "is what one round leaves: there are three."),
        Mistake(0.8 ** 2, "is what two rounds leave: there are three."),
        Mistake(0.8 ** 4, "is what four rounds leave: there are three."),
        Mistake(1 - 0.8 ** 3, "is the share pruned in three rounds: the question asks what remains."),
        Mistake(0.2 ** 3, "multiplies the pruned 20%: each round keeps 80% of what is left."),
    ], hint="each round keeps 80% of what is left: multiply the rounds' shares.")


@exercise("02.global-hardest-hit")
def _global_hardest_hit(answer, *, model) -> Verdict:
    from lthkit.course.widgets import one_shot_mask

    report = one_shot_mask(model, 0.9, "global").report()
    kept = {read_name(n): row["weights_remaining"] for n, row in report.items()}
    names = {read_name(n): n for n in report}
    hardest = min(kept, key=kept.get)
    given = read_name(answer)
    if given == hardest:
        return Verdict(True, f"{names[hardest]} keeps only {kept[hardest]:.1%} of its weights.")
    if given not in kept:
        return Verdict(False, f"give a layer's name, one of {', '.join(repr(n) for n in kept)}, not {answer!r}.")
    if kept[given] == max(kept.values()):
        return Verdict(False, f"{given} keeps {kept[given]:.1%} of its weights, the largest share: the question "
                              "asks which layer loses the most.")
    return Verdict(False, f"{given} keeps {kept[given]:.1%} of its weights, and another layer keeps less: print "
                          "the mask's report() for global pruning at 90% and compare the layers' fractions.")


# ---------------------------------------------------------------------------------------------
# Notebook 03

@exercise("03.weights-after-10")
def _weights_after_ten(answer) -> Verdict:
    total = sum(LENET.values())

    def left(rounds: int, output_rate: float = 0.1) -> int:
        return (_layer_weights_left(0.2, rounds, LENET["fc1"]) + _layer_weights_left(0.2, rounds, LENET["fc2"])
                + _layer_weights_left(output_rate, rounds, LENET["output"]))

    exact = 100 * left(10) / total
    unrounded = 100 * ((LENET["fc1"] + LENET["fc2"]) * 0.8 ** 10 + LENET["output"] * 0.9 ** 10) / total
    return judge_number(answer, exact, unit="percent", tolerance=0.05, min_decimals=1, mistakes=[
        Mistake(100 * 0.8 ** 10, "is 100 × 0.8¹⁰, as if every layer kept 80% per round: the output layer keeps 90% "
                                 "per round, not 80%; weigh each layer by its size."),
        Mistake(100 * 0.9 ** 10, "is 100 × 0.9¹⁰, the output layer alone: the hidden layers keep 80% per round."),
        Mistake(100 * (2 * 0.8 ** 10 + 0.9 ** 10) / 3, "averages the three layers' shares: weigh each by its "
                                                       "size, the output layer has only 1,000 weights."),
        Mistake(100 * left(10) / (total + sum(LENET_BIASES.values())),
                "divides by all 266,610 parameters: the question counts the 266,200 weights."),
        Mistake(100 * left(9) / total, "is what 9 rounds leave: there are 10."),
        Mistake(100 * left(11) / total, "is what 11 rounds leave: there are 10."),
        Mistake(100 - exact, "is the share pruned: the question asks what remains."),
        Mistake(unrounded, "leaves the weights unrounded: each round prunes whole weights, so round each "
                           "layer's count every round."),
    ], hint="hidden layers keep 80% per round, the output layer 90%; weigh each by its size.")


@exercise("03.best-round")
def _best_round(answer, *, results) -> Verdict:
    rounds = {r.round: r for r in results.rounds}
    top = max(r.arms["ticket"].early_stop_test_accuracy for r in results.rounds)
    best = {k: r for k, r in rounds.items() if r.arms["ticket"].early_stop_test_accuracy == top}
    given = read_whole(answer)
    if given in best:
        ties = f" (tied with round {', '.join(str(b) for b in best if b != given)})" if len(best) > 1 else ""
        return Verdict(True, f"round {given}, with {best[given].weights_remaining:.1%} of the weights left{ties}.")
    if given not in rounds:
        return Verdict(False, f"give a round number, from {min(rounds)} to {max(rounds)}, not {answer!r}.")
    at_end = max(r.arms["ticket"].test_accuracy for r in results.rounds)
    if rounds[given].arms["ticket"].test_accuracy == at_end:
        return Verdict(False, f"round {given}'s ticket is the best at the end of training; the question asks for "
                              "the test accuracy at early stop (early_stop_test_accuracy).")
    return Verdict(False, "compare early_stop_test_accuracy of the ticket across results.rounds.")


# ---------------------------------------------------------------------------------------------
# Notebook 04

@exercise("04.first-gap")
def _first_gap(answer, *, results) -> Verdict:
    def first(rounds: list[int]) -> int | None:
        return rounds[0] if rounds else None

    def gap(r, key: str = "early_stop_test_accuracy", control: str = "reinit") -> float:
        return getattr(r.arms["ticket"], key) - getattr(r.arms[control], key)

    pruned = [r for r in results.rounds[1:] if "reinit" in r.arms]
    behind = [r.round for r in pruned if gap(r) > 0.01]
    expected = first(behind)
    if said_none(answer):
        if expected is None:
            return Verdict(True, "it never does in this run.")
        return Verdict(False, "in your run reinit does fall more than one point behind the ticket at some round: "
                              "find the first.")
    given = read_whole(answer)
    if given is not None and given == expected:
        return Verdict(True, f"round {expected}.")
    if given is None or given not in {r.round for r in pruned}:
        known = [r.round for r in pruned]
        where = f"from {min(known)} to {max(known)}" if known else "of your run"
        return Verdict(False, f"give a round {where}, or 'none', not {answer!r}.")
    r = next(r for r in pruned if r.round == given)
    if given in behind:
        return Verdict(False, f"at round {given} reinit is more than one point behind, but it already is at an "
                              "earlier round.")
    if given == first([x.round for x in pruned if gap(x, "test_accuracy") > 0.01]):
        return Verdict(False, f"round {given} is the first gap in accuracy at the end of training; the question "
                              "compares the accuracy at early stop (early_stop_test_accuracy).")
    if "random" in r.arms and given == first([x.round for x in pruned if "random" in x.arms
                                              and gap(x, control="random") > 0.01]):
        return Verdict(False, f"round {given} is where the random mask first falls behind; the question asks "
                              "about reinit.")
    if gap(r) < -0.01:
        return Verdict(False, f"at round {given} reinit is ahead of the ticket: subtract reinit's early-stop "
                              "accuracy from the ticket's.")
    if gap(r) > 0:
        return Verdict(False, f"at round {given} reinit is behind, but by {100 * gap(r):.2f} points, not more "
                              "than one.")
    return Verdict(False, "for each round, subtract reinit's early-stop accuracy from the ticket's.")


@exercise("04.worse-control")
def _worse_control(answer, *, results) -> Verdict:
    last = results.rounds[-1].arms
    lowest = min(last[a].early_stop_test_accuracy for a in ("reinit", "random"))
    worse = [a for a in ("reinit", "random") if last[a].early_stop_test_accuracy == lowest]
    given = read_name(answer)
    if given in worse:
        return Verdict(True, f"{given}, at {last[given].early_stop_test_accuracy:.2%}.")
    if given == "ticket":
        return Verdict(False, "the ticket is not a control: give 'reinit' or 'random'.")
    if given not in ("reinit", "random"):
        return Verdict(False, f"give 'reinit' or 'random', not {answer!r}.")
    if last[given].test_accuracy < last[worse[0]].test_accuracy:
        return Verdict(False, f"{given} is worse at the end of training; the question compares the accuracy at "
                              "early stop (early_stop_test_accuracy).")
    return Verdict(False, "look at the last round's early-stop accuracies of the two controls.")


# ---------------------------------------------------------------------------------------------
# Notebook 05

@exercise("05.conv6-weights-after-5")
def _conv6_after_five(answer) -> Verdict:
    kinds = _weights_by_kind("conv6")
    total = sum(kinds.values())

    def unrounded(conv: float, fc: float, output: float | None, rounds: int = 5) -> float:
        keep = {"conv": conv, "fc": fc, "output": output}
        share = sum(n * keep[k] ** rounds for k, n in kinds.items() if keep[k] is not None)
        return 100 * share / sum(n for k, n in kinds.items() if keep[k] is not None)

    exact = 100 * _model_weights_left("conv6", 5)
    every_parameter = _parameter_count("conv6")
    return judge_number(answer, exact, unit="percent", tolerance=0.05, min_decimals=1, mistakes=[
        Mistake(100 * (0.85 ** 5 + 0.8 ** 5) / 2, "is the plain average of 0.85⁵ and 0.8⁵: weigh the "
                                                  "convolutions and the fully-connected layers by their sizes, "
                                                  "and the output layer keeps 90% per round."),
        Mistake(unrounded(0.85, 0.8, 0.8), "is what pruning the output layer at 20% gives: it keeps 90% per round."),
        Mistake(unrounded(0.85, 0.8, 0.85), "is what pruning the output layer at 15% gives: it keeps 90% per round."),
        Mistake(unrounded(0.85, 0.8, None), "is what leaving out the output layer gives: its 2,560 weights keep "
                                            "90% per round."),
        Mistake(unrounded(0.8, 0.85, 0.9), "swaps the rates: convolutions keep 85% per round, fully-connected "
                                           "layers 80%."),
        Mistake(100 * 0.85 ** 5, "is 100 × 0.85⁵, as if every layer were a convolution: the fully-connected "
                                 "layers keep 80% per round, the output layer 90%."),
        Mistake(100 * 0.8 ** 5, "is 100 × 0.8⁵, as if every layer were fully connected: the convolutions keep "
                                "85% per round, the output layer 90%."),
        Mistake(100 * (0.85 ** 5 + 0.8 ** 5 + 0.9 ** 5) / 3, "averages the three rates' shares: weigh each kind "
                                                             "of layer by its size."),
        Mistake(100 * _model_weights_left("conv6", 4), "is what 4 rounds leave: there are 5."),
        Mistake(100 * _model_weights_left("conv6", 6), "is what 6 rounds leave: there are 5."),
        Mistake(exact * total / every_parameter, "divides by all parameters, biases included: the question asks "
                                                 "about the prunable weights."),
        Mistake(100 - exact, "is the share pruned: the question asks what remains."),
        Mistake(unrounded(0.85, 0.8, 0.9), "leaves the weights unrounded: each round prunes whole weights, so "
                                           "round each layer's count every round."),
    ], hint="Conv-6's convolutions keep 85% per round, its fully-connected layers 80%, the output layer 90%; "
            "weigh each by its share of the weights (count_parameters and prunable_layers help).")


@exercise("05.most-fc")
def _most_fc(answer) -> Verdict:
    shares = {}
    for m in ("conv2", "conv4", "conv6"):
        kinds = _weights_by_kind(m)
        shares[m] = (kinds.get("fc", 0) + kinds.get("output", 0)) / sum(kinds.values())
    best = max(shares, key=shares.get)
    given = read_name(answer)
    if given == best:
        others = ", ".join(f"{m} {shares[m]:.1%}" for m in shares if m != best)
        return Verdict(True, f"{best}: {shares[best]:.1%} of its prunable weights are fully connected ({others}).")
    if given not in shares:
        return Verdict(False, f"give 'conv2', 'conv4' or 'conv6', not {answer!r}.")
    return Verdict(False, f"{given} has {shares[given]:.1%} of its prunable weights fully connected, and another "
                          "network has more: count each network's fully-connected weights.")


# ---------------------------------------------------------------------------------------------
# Notebook 06

@exercise("06.finetune-lr")
def _finetune_lr(answer) -> Verdict:
    from lthkit.config import make_config

    tc = make_config(model="resnet20").training
    end = tc.lr_at(tc.iterations - 1)
    return judge_number(answer, end, unit="number", tolerance=1e-9, mistakes=[
        Mistake(tc.lr, "is the rate training starts with: fine-tuning goes on at the rate training ended with."),
        Mistake(tc.lr * tc.gamma, "applies one drop: training passes both, at 32,000 and at 48,000."),
        Mistake(end * tc.gamma, "applies three drops: there are two."),
        Mistake(make_config().training.lr, "is LeNet-300-100's Adam rate: ResNet-20 trains with SGD on its "
                                                 "own schedule."),
        Mistake(0, "would not train at all: fine-tuning trains, at the rate training ended with."),
    ], hint="fine-tuning trains at the learning rate training ended with: start from 0.1 and apply "
            "each of the schedule's drops (x0.1 at 32,000 and at 48,000 of 63,000 iterations).")


@exercise("06.instability-by-hand")
def _instability_by_hand(answer) -> Verdict:
    from lthkit.stability import instability

    errors = [0.09, 0.14, 0.35, 0.16, 0.11]
    top = 100 * max(errors)
    return judge_number(answer, 100 * instability(errors), unit="percent", tolerance=0.05, mistakes=[
        Mistake(top - 100 * errors[0], "subtracts the first end's error alone: subtract the mean of both ends."),
        Mistake(top - 100 * errors[-1], "subtracts the last end's error alone: subtract the mean of both ends."),
        Mistake(top, "is the highest error itself: subtract the mean of the two ends' errors from it."),
        Mistake(top - 100 * sum(errors) / len(errors), "subtracts the mean of all five points: subtract the mean "
                                                       "of the two ends only."),
        Mistake(100 * (errors[0] + errors[-1]) / 2, "is the mean of the two ends: subtract it from the highest "
                                                    "error on the line."),
    ], hint="take the highest error on the line and subtract the mean of the two ends' errors.", suffix=" points")


@exercise("06.earliest-stable")
def _earliest_stable(answer, *, lines) -> Verdict:
    from lthkit.stability import instability, is_stable

    points = sorted(lines)
    stable = [k for k in points if is_stable(lines[k])]
    if not stable:
        if said_none(answer):
            return Verdict(True, "none of your rewind points is stable: train longer before rewinding.")
        return Verdict(False, "check each rewind point's instability against 2 percentage points; if none is "
                              "below, answer 'none'.")
    if said_none(answer):
        return Verdict(False, "at least one of your rewind points is stable: find the earliest.")
    value = read_whole(answer)
    if value not in lines:
        return Verdict(False, f"give an iteration (one of {points}) or 'none', not {answer!r}.")
    if value == stable[0]:
        return Verdict(True, f"iteration {value}: from there the two copies end in one linearly connected basin.")
    if value in stable:
        return Verdict(False, f"iteration {value} is stable, but an earlier rewind point is too.")
    return Verdict(False, f"from iteration {value} the error rises {100 * instability(lines[value]):.1f} points "
                          "along the line, more than 2: not stable. Look at each rewind point's instability "
                          f"({', '.join(str(k) for k in points)}); the earliest one at most 2 points is the answer.")


# ---------------------------------------------------------------------------------------------
# Notebook 07

@exercise("07.imp-trainings")
def _imp_trainings(answer) -> Verdict:
    from lthkit.masks import count_to_prune
    from lthkit.models import build_model

    size = build_model("lenet300", (1, 28, 28)).fc1.weight.numel()
    alive, rounds = size, 0
    while alive > 0.02 * size:
        alive -= count_to_prune(0.2, alive)
        rounds += 1
    given = read_whole(answer)
    if given is None:
        return Verdict(False, f"give a whole number of trainings, not {answer!r}.")
    if given == rounds + 1:
        return Verdict(True, f"{rounds + 1}: the dense training and {rounds} rounds, the last training the "
                             f"ticket's own ({alive:,} of fc1's {size:,} weights left, {alive / size:.2%}).")
    if given == rounds:
        return Verdict(False, f"{rounds} is the number of pruning rounds: the dense network is trained once "
                              "before the first, so add it.")
    if given == rounds - 1:
        kept = 0.8 ** (rounds - 1)
        return Verdict(False, f"after {rounds - 1} rounds fc1 still keeps {kept:.2%} of its weights, above 2%: "
                              "one more round is needed, and then count the trainings, the dense one included.")
    return Verdict(False, "each round keeps 80% of fc1's surviving weights: find the first round r where "
                          "0.8 ** r is at most 0.02, then count the trainings, the dense one and each round's.")


# ---------------------------------------------------------------------------------------------
# Notebook 08

@exercise("08.mask-bytes")
def _mask_bytes(answer) -> Verdict:
    weights = sum(LENET.values())
    biases = sum(LENET_BIASES.values())
    return judge_number(answer, weights / 8, unit="number", tolerance=0, mistakes=[
        Mistake(weights, "is one byte per weight (what a torch.bool tensor takes): packed, 8 weights share a byte."),
        Mistake(weights * 4, "is 4 bytes per weight, float32: the trained weights, or a mask stored as floats; a "
                             "supermask needs one bit per weight."),
        Mistake((weights + biases) / 8, "counts the biases too: only the 266,200 weights are masked, the biases "
                                        "stay as drawn (zero)."),
        Mistake(weights / 8 / 1024, "is in KiB: give the number of bytes."),
    ], hint="one bit per prunable weight (784·300 + 300·100 + 100·10 of them), 8 bits to the byte.")


# ---------------------------------------------------------------------------------------------
# Notebook 09

@exercise("09.weights-after-4")
def _vit_weights_after_four(answer) -> Verdict:
    from lthkit.course import VIT_RATES
    from lthkit.masks import count_to_prune
    from lthkit.models import build_model, prunable_layers

    model = build_model("vit", (1, 28, 28))
    params = dict(model.named_parameters())
    total = left = same_rate = 0
    for name, kind in prunable_layers(model).items():
        size = alive = params[name].numel()
        for _ in range(4):
            alive -= count_to_prune(VIT_RATES[kind], alive)
        total, left = total + size, left + alive
        same_rate += size * 0.6 ** 4
    return judge_number(answer, 100 * left / total, unit="percent", tolerance=0.05, min_decimals=1, mistakes=[
        Mistake(100 * 0.6 ** 4, "is 0.6⁴, every kind at 40%: the head is pruned at 20% a round."),
        Mistake(100 * 0.4 ** 4, "is 0.4⁴: a rate of 40% removes 40% of the survivors, so 60% stay each round."),
        Mistake(100 * 0.8 ** 4, "is 0.8⁴: that is the head's share alone; the other kinds keep 60% a round."),
        Mistake(100 * (1 - 4 * 0.4), "subtracts 40% of the original weights each round: a rate applies to the "
                                     "weights still alive."),
    ], hint="each kind keeps (1 - rate) of its surviving weights each round: 0.6⁴ of the embedding, attention "
            "and mlp weights, 0.8⁴ of the head's; add the weights left and divide by all 69,312.")



# ---------------------------------------------------------------------------------------------
# Notebook 10

@exercise("10.csr-crossover")
def _csr_crossover(answer) -> Verdict:
    from lthkit.export import bitmask_bytes, csr_bytes

    rows, columns = 300, 784
    n = rows * columns
    kept = next(k for k in range(n, -1, -1) if csr_bytes(rows, k) < bitmask_bytes(n, k))
    return judge_number(answer, 100 * kept / n, unit="percent", tolerance=0.05, min_decimals=1, mistakes=[
        Mistake(100 / 32, "leaves out CSR's row pointers, 4 bytes for each of the 301: they cost a little of the "
                          "room below 1 in 32."),
        Mistake(100 * (n / 8 - 8 * (rows + 1)) / 8 / n, "uses 64-bit indices (PyTorch's own): with 32-bit ones "
                                                         "each kept weight costs 8 bytes in CSR, not 12."),
        Mistake(100 * (n - 4 * (rows + 1)) / 4 / n, "stores the mask as one byte per weight: packed, it takes one "
                                                     "bit."),
    ], hint="a bitmask takes n/8 + 4·kept bytes, CSR 8·kept + 4·(rows + 1) (a value and a column index per kept "
            "weight, a pointer per row and one more): solve 8k + 4·301 < 235,200/8 + 4k for k, as a percentage "
            "of 235,200.")
