"""What the learner's own run shows, in sentences printed from that run.

A learner's copy has no committed outputs, so the notebooks' markdown says what to look for and what
the papers found, never a number from a run; these functions write the sentences that hold for the
run the learner just made (their seed, their machine, their budget).
"""

from __future__ import annotations

import math

from lthkit.catalogue import dataset_info
from lthkit.results import ArmResult, Results


def tickets_against_dense(results: Results, arm: str = "ticket") -> str:
    """Where the run's tickets stand against its dense network (round 0): down to which fraction of the
    weights every ticket's test accuracy at early stop is at least the dense network's, the best round,
    which tickets stop earlier than the dense network, and which early stops the budget capped."""
    dense, rounds = results.rounds[0].arms["ticket"], results.rounds[1:]
    if not rounds:
        return f"your dense network: {dense.early_stop_test_accuracy:.2%} at its early stop; no pruning round yet."
    last = max(p.iteration for p in dense.curve)
    lines = [f"your dense network reaches {dense.early_stop_test_accuracy:.2%} at its early stop "
             f"(iteration {dense.early_stop_iteration:,}" + (", the last one: the budget capped it)" if
                                                               dense.early_stop_iteration == last else ")")]
    above = 0
    for r in rounds:
        if r.arms[arm].early_stop_test_accuracy < dense.early_stop_test_accuracy:
            break
        above += 1
    if above == len(rounds):
        lines.append(f"every {arm} is at or above it, down to {rounds[-1].weights_remaining:.1%} of the weights")
    elif above:
        lines.append(f"every {arm} is at or above it down to {rounds[above - 1].weights_remaining:.1%} of the "
                     f"weights; round {rounds[above].round} ({rounds[above].weights_remaining:.1%}) is the first below")
    else:
        lines.append(f"round 1's {arm} ({rounds[0].weights_remaining:.1%} of the weights) is already below it")
    best = max(rounds, key=lambda r: r.arms[arm].early_stop_test_accuracy)
    lines.append(f"the best {arm}: round {best.round}, {best.arms[arm].early_stop_test_accuracy:.2%} at "
                 f"{best.weights_remaining:.1%} of the weights")
    faster = [r for r in rounds if r.arms[arm].early_stop_iteration < dense.early_stop_iteration]
    if faster:
        stops = sorted({r.arms[arm].early_stop_iteration for r in faster})
        when = f"iteration {stops[0]:,}" if len(stops) == 1 else f"iterations {stops[0]:,}-{stops[-1]:,}"
        where = (f"{faster[0].weights_remaining:.1%}" if len(faster) == 1 else
                 f"{faster[0].weights_remaining:.1%} to {faster[-1].weights_remaining:.1%}")
        lines.append(f"{len(faster)} of {len(rounds)} tickets stop earlier than the dense network ({when}, at "
                     f"{where} of the weights)")
    else:
        lines.append("no ticket stops earlier than the dense network")
    capped = [r for r in rounds if r.arms[arm].early_stop_iteration == last]
    if capped:
        where = ", ".join(f"{r.weights_remaining:.1%}" for r in capped)
        lines.append(f"{len(capped)} early stop{'s' if len(capped) > 1 else ''} at the last iteration ({last:,}), at "
                     f"{where} of the weights: there the budget set the stop, not the {arm}")
    return "\n".join(f"- {line}." for line in lines)


def learning_curve(result: ArmResult, near: float = 0.005) -> str:
    """What one network's learning curve shows (notebook 01): where its validation loss is lowest (the
    early stop) and how flat that floor is (the other evaluations within ``near`` of it, any of which
    another seed could have picked), how far the test accuracy moves after the stop, and the gap between
    training and validation loss at the end (the network fitting its own training images)."""
    curve, stop = result.curve, result.early_stop_iteration
    first, last = curve[0], curve[-1]
    lines = [(f"your validation loss is lowest at iteration {stop:,} of {last.iteration:,} ({result.early_stop_val_loss:.3f},"
              f" from {first.val_loss:.3f} at the start): your early stop, with {result.early_stop_test_accuracy:.2%} "
              f"test accuracy there and {result.test_accuracy:.2%} at the end")]
    if stop == last.iteration:
        lines.append("the minimum is the last evaluation: the loss was still falling when the budget ended training")
    close = [p.iteration for p in curve if p.iteration != stop and p.val_loss - result.early_stop_val_loss <= near]
    if close:
        shown = ", ".join(f"{i:,}" for i in close[:6]) + (", ..." if len(close) > 6 else "")
        lines.append(f"{len(close)} other evaluation{'s' if len(close) > 1 else ''} came within {near} of that minimum "
                     f"(iteration{'s' if len(close) > 1 else ''} {shown}): a flat floor, so the stop is a rough mark")
    else:
        lines.append(f"no other evaluation came within {near} of that minimum: a clear dip")
    after = [p.test_accuracy for p in curve if p.iteration >= stop]
    lines.append(f"from the stop to the end the test accuracy moves between {min(after):.2%} and {max(after):.2%}")
    gap = last.val_loss - last.train_loss
    lines.append(f"at the end the training loss is {last.train_loss:.3f} and the validation loss {last.val_loss:.3f}: "
                 + (f"the network fits its training images better than new ones (a gap of {gap:.3f})" if gap > 0
                    else "no gap yet: the network fits new images as well as its own"))
    return "\n".join(f"- {line}." for line in lines)


def interval_points(accuracy: float, images: int) -> float:
    """Half the width, in percentage points, of the 95% interval of one accuracy measured on ``images``
    test images (the normal approximation to the binomial)."""
    return 100 * 1.96 * math.sqrt(accuracy * (1 - accuracy) / images)


def controls_against_ticket(results: Results, controls: tuple[str, ...] = ("reinit", "random")) -> str:
    """How far each control falls behind the ticket in the run (notebook 04): from which round on it is
    more than a point behind (and whether it stays there), its largest gap, and the sparsest round's
    three accuracies, beside the interval a difference of two accuracies on this test set carries."""
    config = results.config
    images = config.get("eval_images") or dataset_info(config["dataset"]).test_size
    rounds = [r for r in results.rounds[1:] if all(c in r.arms for c in controls)]
    if not rounds:
        return "no round with the controls yet."
    dense = results.rounds[0].arms["ticket"].early_stop_test_accuracy
    one = interval_points(dense, images)
    lines = [(f"one accuracy on {images:,} test images carries a 95% interval of about ±{one:.1f} points, a difference "
             f"of two about ±{math.sqrt(2) * one:.1f}: smaller gaps are noise in one run")]
    for control in controls:
        gaps = [(r, 100 * (r.arms["ticket"].early_stop_test_accuracy - r.arms[control].early_stop_test_accuracy))
                for r in rounds]
        behind = [r for r, gap in gaps if gap > 1]
        worst, gap = max(gaps, key=lambda rg: rg[1])
        if behind:
            stays = all(g > 1 for r, g in gaps if r.round >= behind[0].round)
            where = (f"from round {behind[0].round} ({behind[0].weights_remaining:.1%} of the weights) on" if stays else
                     f"first at round {behind[0].round} ({behind[0].weights_remaining:.1%}), not at every round after it")
            lines.append(f"{control} is more than a point behind the ticket {where}; its largest gap is {gap:.2f} points, "
                         f"at {worst.weights_remaining:.1%}")
        else:
            lines.append(f"{control} is never more than a point behind the ticket (its largest gap: {gap:.2f} points, "
                         f"at {worst.weights_remaining:.1%})")
    last = rounds[-1]
    lines.append(f"at the sparsest round ({last.weights_remaining:.1%} of the weights): ticket "
                 f"{last.arms['ticket'].early_stop_test_accuracy:.2%}, "
                 + ", ".join(f"{c} {last.arms[c].early_stop_test_accuracy:.2%}" for c in controls))
    return "\n".join(f"- {line}." for line in lines)


def series(results: Results, arm: str = "ticket") -> dict[int, tuple[float, float]]:
    """Round -> (fraction of the weights, test accuracy at early stop) of ``arm``, for each pruning round
    that trained it (a collapsed mask trains nothing)."""
    return {r.round: (r.weights_remaining, r.arms[arm].early_stop_test_accuracy) for r in results.rounds[1:]
            if arm in r.arms}


def difference_interval(a: float, b: float, images: int) -> float:
    """Half the width, in points, of the 95% interval of the difference of two accuracies measured on
    ``images`` test images each: about √2 times one accuracy's near equal accuracies."""
    return math.hypot(interval_points(a, images), interval_points(b, images))


def against(named: dict[str, dict[int, tuple[float, float]]], reference: str, images: int,
            say_interval: bool = True) -> str:
    """Each series of ``named`` against ``named[reference]``, round by round: at how many sparsities it is
    below or above the reference by more than the 95% interval of the difference (the rest is noise in
    one run), and the two at the sparsest round both reached. ``say_interval``: open with the interval
    (once per cell is enough)."""
    base = named[reference]
    lines = [(f"gaps to {reference} counted only beyond the 95% interval of a difference of two accuracies on "
              f"{images:,} test images (±{difference_interval(0.97, 0.97, images):.1f} points near 97%, "
              f"±{difference_interval(0.9, 0.9, images):.1f} near 90%)")] if say_interval else []
    for name, points in named.items():
        if name == reference:
            continue
        shared = sorted(set(points) & set(base))
        if not shared:
            lines.append(f"{name}: no round in common with {reference}")
            continue
        gaps = [(100 * (points[r][1] - base[r][1]), difference_interval(points[r][1], base[r][1], images)) for r in shared]
        below, above = sum(g < -h for g, h in gaps), sum(g > h for g, h in gaps)
        r = shared[-1]
        lines.append(f"{name}: below {reference} at {below} of {len(shared)} sparsities, above it at {above}; at "
                     f"{points[r][0]:.1%} of the weights {points[r][1]:.2%} against {base[r][1]:.2%} "
                     f"({100 * (points[r][1] - base[r][1]):+.2f} points)")
    return "\n".join(f"- {line}." for line in lines)


def reference_spread(named: dict[str, tuple[list[Results], str]]) -> str:
    """At the sparsest round of the reference runs: for each label's (runs, arm), the arm's mean test
    accuracy at early stop over the seeds, with the lowest and highest seed (the band's edges)."""
    lines = []
    for name, (runs, arm) in named.items():
        last = min(max(series(run, arm)) for run in runs)
        points = [series(run, arm)[last] for run in runs]
        accuracies = [acc for _, acc in points]
        lines.append(f"{name}: {sum(accuracies) / len(accuracies):.2%} on average over {len(runs)} seeds "
                     f"({min(accuracies):.2%} to {max(accuracies):.2%}) at {points[0][0]:.1%} of the weights")
    return "\n".join(f"- {line}." for line in lines)


def best_density(accuracies: dict[float, float], images: int) -> str:
    """Where test accuracy over densities (fraction of each layer kept -> accuracy) peaks (notebook 08's
    edge-popup), which densities are within the 95% interval of a difference of the peak, and how far
    the sparsest one falls from it."""
    best = max(accuracies, key=accuracies.get)
    near = [d for d in sorted(accuracies) if d != best and
            100 * (accuracies[best] - accuracies[d]) <= difference_interval(accuracies[best], accuracies[d], images)]
    sparsest = min(accuracies)
    lines = [f"your most accurate mask keeps {best:.0%} of each layer: {accuracies[best]:.2%}",
             (f"within the 95% interval of a difference of it (noise in one run): keeping "
              f"{', '.join(f'{d:.0%}' for d in near)}") if near else
             "every other density is below it by more than the 95% interval of a difference"]
    if sparsest != best:
        lines.append(f"keeping {sparsest:.0%}: {accuracies[sparsest]:.2%}, "
                     f"{100 * (accuracies[best] - accuracies[sparsest]):.2f} points below it")
    return "\n".join(f"- {line}." for line in lines)


def every_stop_capped(results: Results) -> bool:
    """Whether every network of the run (each arm of each round) stopped at its last evaluation: the
    budget, not the validation loss, set every early stop, so early-stop iterations are one flat line
    and accuracy at early stop is accuracy at the end (notebook 05 then draws one of each, not two)."""
    return all(arm.early_stop_iteration == arm.curve[-1].iteration for r in results.rounds for arm in r.arms.values())
