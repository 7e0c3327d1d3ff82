"""The course's exercises and their checkers.

Each notebook asks a question, the learner sets ``answer = ...`` and runs
``check("03.best-round", answer, results=results)``. The checker computes the right answer
itself, from first principles or from the learner's own run (passed as context), so a
notebook never prints the solution in a code cell; solutions sit in a collapsed cell.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from lthkit.data import dataset_info, iterations_per_epoch


@dataclass(frozen=True)
class Verdict:
    correct: bool
    message: str

    def __str__(self) -> str:
        return ("✓ " if self.correct else "✗ ") + self.message


EXERCISES: dict[str, Callable[..., Verdict]] = {}


def exercise(name: str):
    def register(fn):
        EXERCISES[name] = fn
        return fn
    return register


def verdict(name: str, answer, **context) -> Verdict:
    """Judge ``answer`` to exercise ``name``."""
    import lthkit.code_exercises, lthkit.quizzes  # noqa: F401, E401  (they register their exercises here)

    if name not in EXERCISES:
        raise KeyError(f"no exercise {name!r}; known: {', '.join(sorted(EXERCISES))}")
    if answer is None:
        return Verdict(False, "not answered yet: set `answer` in the cell above and run both cells again.")
    return EXERCISES[name](answer, **context)


def check(name: str, answer, **context) -> None:
    """Print the verdict on ``answer`` to exercise ``name`` (the checker cell of a notebook)."""
    print(verdict(name, answer, **context))


def _number(answer, expected: float, tolerance: float, hint: str, unit: str = "") -> Verdict:
    try:
        value = float(answer)
    except (TypeError, ValueError):
        return Verdict(False, f"give a number, not {answer!r}.")
    if abs(value - expected) <= tolerance:
        return Verdict(True, f"{value:g}{unit} it is.")
    return Verdict(False, hint)


def _layer_weights_left(rate: float, rounds: int, size: int) -> int:
    alive = size
    for _ in range(rounds):
        alive -= math.floor(rate * alive + 0.5)
    return alive


@exercise("00.train-size")
def _train_size(answer) -> Verdict:
    return _number(answer, dataset_info("mnist").train_size, 0,
                   "MNIST has 60,000 training images, and the paper holds some out for validation.")


@exercise("00.epoch-iterations")
def _epoch_iterations(answer) -> Verdict:
    exact = iterations_per_epoch(dataset_info("mnist").train_size, 60)
    return _number(answer, exact, 1, "divide the training images by the batch size (60), rounding up.")


@exercise("01.fc1-weights")
def _fc1_weights(answer) -> Verdict:
    return _number(answer, 28 * 28 * 300, 0, "each of the 300 units sees every one of the 28 x 28 pixels.")


@exercise("01.total-parameters")
def _total_parameters(answer) -> Verdict:
    expected = 784 * 300 + 300 + 300 * 100 + 100 + 100 * 10 + 10
    return _number(answer, expected, 0, "add each layer's weights and biases (one bias per unit).")


@exercise("01.early-stop")
def _early_stop(answer, *, result) -> Verdict:
    spacing = result.curve[1].iteration - result.curve[0].iteration if len(result.curve) > 1 else 0
    verdict = _number(answer, result.early_stop_iteration, spacing,
                      "look for the evaluation with the smallest validation loss, not the highest accuracy.")
    if verdict.correct:
        return Verdict(True, f"early stopping stopped at iteration {result.early_stop_iteration}.")
    return verdict


@exercise("02.fc1-after-3-rounds")
def _fc1_after_rounds(answer) -> Verdict:
    return _number(answer, 0.8 ** 3, 0.002, "each round keeps 80% of what is left: multiply, do not subtract.")


@exercise("02.global-hardest-hit")
def _global_hardest_hit(answer, *, model) -> Verdict:
    from lthkit.widgets import one_shot_mask

    report = one_shot_mask(model, 0.9, "global").report()
    hardest = min(report, key=lambda n: report[n]["weights_remaining"])
    given = str(answer).removesuffix(".weight")
    if given == hardest.removesuffix(".weight"):
        return Verdict(True, f"{hardest} keeps only {report[hardest]['weights_remaining']:.1%} of its weights.")
    return Verdict(False, "print the mask's report() for global pruning at 90% and compare the layers' fractions.")


@exercise("03.weights-after-10")
def _weights_after_ten(answer) -> Verdict:
    left = _layer_weights_left(0.2, 10, 235200) + _layer_weights_left(0.2, 10, 30000) + _layer_weights_left(0.1, 10, 1000)
    return _number(answer, 100 * left / 266200, 0.1,
                   "hidden layers keep 80% per round, the output layer 90%; weigh each by its size.", "%")


@exercise("03.best-round")
def _best_round(answer, *, results) -> Verdict:
    top = max(r.arms["ticket"].early_stop_test_accuracy for r in results.rounds)
    best = {r.round: r for r in results.rounds if r.arms["ticket"].early_stop_test_accuracy == top}
    if answer in best:
        ties = f" (tied with round {', '.join(str(b) for b in best if b != answer)})" if len(best) > 1 else ""
        return Verdict(True, f"round {answer}, with {best[answer].weights_remaining:.1%} of the weights left{ties}.")
    return Verdict(False, "compare early_stop_test_accuracy of the ticket across results.rounds.")


@exercise("04.first-gap")
def _first_gap(answer, *, results) -> Verdict:
    gaps = [r.round for r in results.rounds[1:] if "reinit" in r.arms
            and r.arms["ticket"].early_stop_test_accuracy - r.arms["reinit"].early_stop_test_accuracy > 0.01]
    expected = gaps[0] if gaps else None
    if answer == expected or (expected is None and answer in ("none", "None")):
        return Verdict(True, f"round {expected}." if expected is not None else "it never does in this run.")
    return Verdict(False, "for each round, subtract reinit's early-stop accuracy from the ticket's.")


@exercise("04.worse-control")
def _worse_control(answer, *, results) -> Verdict:
    last = results.rounds[-1].arms
    worse = min(("reinit", "random"), key=lambda a: last[a].early_stop_test_accuracy)
    if answer == worse:
        return Verdict(True, f"{worse}, at {last[worse].early_stop_test_accuracy:.2%}.")
    return Verdict(False, "look at the last round's early-stop accuracies of the two controls.")


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


@exercise("05.conv6-weights-after-5")
def _conv6_after_five(answer) -> Verdict:
    return _number(answer, 100 * _model_weights_left("conv6", 5), 0.5,
                   "Conv-6's convolutions keep 85% per round, its fully-connected layers 80%, the output layer "
                   "90%; weigh each by its share of the weights (count_parameters and prunable_layers help).", "%")


@exercise("05.most-fc")
def _most_fc(answer) -> Verdict:
    from lthkit.models import build_model, prunable_layers

    def fc_share(model: str) -> float:
        net = build_model(model, (3, 32, 32))
        params = dict(net.named_parameters())
        sizes = {n: params[n].numel() for n in prunable_layers(net)}
        return sum(v for n, v in sizes.items() if prunable_layers(net)[n] != "conv") / sum(sizes.values())

    shares = {m: fc_share(m) for m in ("conv2", "conv4", "conv6")}
    best = max(shares, key=shares.get)
    if str(answer).lower().replace("-", "") == best:
        return Verdict(True, f"{best}: {shares[best]:.1%} of its prunable weights are fully connected "
                             f"(conv4 {shares['conv4']:.1%}, conv6 {shares['conv6']:.1%}).")
    return Verdict(False, "give 'conv2', 'conv4' or 'conv6': count each network's fully-connected weights.")


@exercise("06.finetune-lr")
def _finetune_lr(answer) -> Verdict:
    from lthkit.config import make_config

    tc = make_config(model="resnet20").train_config()
    return _number(answer, tc.lr_at(tc.iterations - 1), 1e-9,
                   "fine-tuning trains at the learning rate training ended with: start from 0.1 and apply "
                   "each of the schedule's drops (x0.1 at 32,000 and at 48,000 of 63,000 iterations).")


@exercise("06.instability-by-hand")
def _instability_by_hand(answer) -> Verdict:
    from lthkit.stability import instability

    return _number(answer, 100 * instability([0.09, 0.14, 0.35, 0.16, 0.11]), 0.05,
                   "take the highest error on the line and subtract the mean of the two ends' errors.",
                   " percentage points")


@exercise("06.earliest-stable")
def _earliest_stable(answer, *, lines) -> Verdict:
    from lthkit.stability import is_stable

    stable = [k for k in sorted(lines) if is_stable(lines[k])]
    said_none = isinstance(answer, str) and answer.strip().lower() == "none"
    if not stable:
        if said_none:
            return Verdict(True, "none of your rewind points is stable: train longer before rewinding.")
        return Verdict(False, "check each rewind point's instability against 2 percentage points; if none is "
                              "below, answer 'none'.")
    if said_none:
        return Verdict(False, "at least one of your rewind points is stable: find the earliest.")
    if isinstance(answer, bool) or not (isinstance(answer, int) or (isinstance(answer, str) and answer.strip().isdigit())):
        return Verdict(False, f"give an iteration (one of {sorted(lines)}) or 'none', not {answer!r}.")
    value = int(answer)
    if value == stable[0]:
        return Verdict(True, f"iteration {value}: from there the two copies end in one linearly connected basin.")
    return Verdict(False, f"look at each rewind point's instability ({', '.join(str(k) for k in sorted(lines))}); "
                          f"the earliest one at most 2 points is the answer.")
