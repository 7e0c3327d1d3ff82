"""What the learner's own run shows, in sentences printed from that run.

A learner's copy has no committed outputs, so the notebooks' markdown says what to look for and what
the papers found, never a number from a run; these functions write the sentences that hold for the
run the learner just made (their seed, their machine, their budget).
"""

from __future__ import annotations

from lthkit.results import Results


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
        lines.append(f"{len(faster)} of {len(rounds)} tickets stop earlier than the dense network (iterations "
                     f"{min(r.arms[arm].early_stop_iteration for r in faster):,}-"
                     f"{max(r.arms[arm].early_stop_iteration for r in faster):,}, at "
                     f"{faster[0].weights_remaining:.1%} to {faster[-1].weights_remaining:.1%} of the weights)")
    else:
        lines.append("no ticket stops earlier than the dense network")
    capped = [r for r in rounds if r.arms[arm].early_stop_iteration == last]
    if capped:
        where = ", ".join(f"{r.weights_remaining:.1%}" for r in capped)
        lines.append(f"{len(capped)} early stop{'s' if len(capped) > 1 else ''} at the last iteration ({last:,}), at "
                     f"{where} of the weights: there the budget set the stop, not the {arm}")
    return "\n".join(f"- {line}." for line in lines)
