"""End-of-notebook quizzes: three multiple-choice questions per notebook.

The questions and their options are in the notebook (a markdown cell the learner reads); this
module holds, for each notebook, the right letter of each question and why it is right, so the
checker can say which answers were wrong and explain every one. The learner answers with three
letters in order, such as ``"b a c"`` (case, commas and spaces do not matter):
``check("03.quiz", "b a c")``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lthkit.course.verdicts import Verdict, exercise


@dataclass(frozen=True)
class Question:
    correct: str  # the right option's letter
    why: str  # shown once the question is answered, right or wrong


QUIZZES: dict[str, tuple[Question, ...]] = {
}

QUIZZES["00"] = (
    Question("c", "IMP rewinds the weights that survive pruning to their own values at initialisation, then "
                  "retrains them. Keeping the trained values, (a), is fine-tuning, one of the ways to retrain "
                  "that notebook 06 compares; drawing fresh random values, (b), is the reinit control of 04 "
                  "and 05, which asks whether the initial values matter at all."),
    Question("b", "The validation images decide when to stop, so the test images are never used for a "
                  "decision and the test accuracy stays an honest estimate. They are not extra test images, "
                  "(a): using the test set to choose the stopping point would make its accuracy optimistic."),
    Question("a", "The `test` budget trains for seconds on at most 1,000 images: it shows that every cell "
                  "runs, not how tickets behave, so it supports no conclusion about tickets either way. Only the "
                  "`classroom` and `paper` budgets train long enough to show the effect, and neither (b) nor "
                  "(c) follows from a run that short."),
)

QUIZZES["01"] = (
    Question("b", "On a flat, noisy stretch of the validation loss the lowest point is one dip among many of "
                  "the same size: another seed or other evaluation points can move it a long way while the "
                  "loss barely changes. It does not mark an exact moment when learning stops, (a), and it is "
                  "chosen by the validation loss, not by the test accuracy, (c)."),
    Question("a", "The early-stop iteration measures how fast a network learns, and the test accuracy there "
                  "compares every network at a point chosen without the test set; the paper reports the "
                  "final accuracy too, as a second, weaker measure. (b) is false: the final accuracy is not "
                  "always lower: after the early stop the test accuracy wanders up and down by a few tenths of "
                  "a point, so the end can land above or below the early stop's (your readout prints the "
                  "range). (c) is false too: the training "
                  "loss keeps falling after the early stop, so the network keeps changing."),
    Question("b", "Pruning the same fraction of every layer removes weights in proportion to the layers' "
                  "sizes, and the first layer holds 235,200 of the 266,200 weights, about 88%. One third, "
                  "(a), would hold only if the layers were the same size; 20%, (c), is the rate per layer, "
                  "not the first layer's share of what is removed."),
)

QUIZZES["02"] = (
    Question("b", "Adam keeps running averages of each weight's gradient, and weight decay pulls on every weight: "
                  "a weight set to zero once, (a), regrows at the first step. Masking the gradient before each "
                  "step keeps Adam's averages at zero, and masking the weights after it undoes anything else. A "
                  "zero learning rate, (c), would freeze the layer's surviving weights too."),
    Question("c", "The rate applies to the weights still alive: 0.2 x 600 = 120. Removing 200, (a), counts the "
                  "400 pruned weights toward the rate; 80, (b), is 0.2 x 400, the pruned ones alone."),
    Question("a", "torch.nn.utils.prune keeps the dense original as weight_orig and the mask as a dense buffer "
                  "weight_mask, so the state dict grows. Only a sparse format that drops the zeros, (b), makes it "
                  "smaller, and only past about half sparsity with 32-bit indices."),
)

QUIZZES["03"] = (
    Question("b", "The survivors go back to their values at initialisation: that is the rewind, and it is what "
                  "makes a lottery ticket. Keeping the trained values, (a), is fine-tuning; fresh random values, "
                  "(c), is the reinit control of notebook 04."),
    Question("c", "A ticket is the pair: the mask and the initial values of the weights it keeps. The mask on "
                  "another initialisation, (a), is the reinit control, which does worse; the trained weights, "
                  "(b), are the pruned network, not a ticket to retrain."),
    Question("b", "Early stopping takes the evaluation with the lowest validation loss; when that is the last one, "
                  "the loss was still falling and a longer budget would have stopped later. It says nothing about "
                  "speed, (a), and the rule itself worked, (c)."),
)

QUIZZES["04"] = (
    Question("b", "reinit keeps the ticket's mask and changes only the initial values, so a gap between them is "
                  "the initial values' doing, for this network and training. The mask alone, (a), is what reinit "
                  "has, and it falls behind; random masks, (c), are the other control."),
    Question("a", "A control must differ from the ticket in one thing only. With a probability per weight, each "
                  "layer's count is right only on average, so the control also differs in size per layer. Speed, "
                  "(b), is beside the point, and a Bernoulli draw can be seeded, (c)."),
    Question("b", "Both results hold under their settings: LeNet with Adam at a small learning rate here, "
                  "VGG/ResNet with SGD at 0.1 there. Neither refutes the other, (a); the checkers ran your "
                  "controls on cases that catch the classic mistakes, (c)."),
)

QUIZZES["05"] = (
    Question("b", "With every early stop on the last iteration, every network, the dense one included, was "
                  "still improving when training ended: the ticket is ahead after the same 300 iterations, "
                  "and a longer training would raise the dense network's accuracy too. So the claim holds at "
                  "an equal training budget, not for the accuracy either network could reach, (a); nothing "
                  "in a run that stops while accuracy still rises shows overfitting, (c)."),
    Question("a", "97.5% of Conv-2's prunable weights sit in its first fully-connected layer, pruned at 20% per "
                  "round, so the whole network loses almost exactly 20% per round (80.1% left after round 1 "
                  "in the reference runs' table). Averaging the rates, (b), ignores that the layers differ in size "
                  "by a factor of a hundred; the convolutions' 10%, (c), applies to under 1% of the weights."),
    Question("c", "The reinit control keeps the ticket's mask and draws fresh initial values, so a gap "
                  "between the two can only come from the initial values. It has the same number of weights "
                  "as the ticket, so it cannot be smaller, (a), and it trains for the same iterations as the "
                  "ticket, (b)."),
)

QUIZZES["06"] = (
    Question("a", "A rise in the error between the two copies means they ended in different valleys of the "
                  "loss: from that point on, the noise of SGD (the data order) still decides where training "
                  "ends, so the point is unstable. Nothing in a barrier says the learning rate is too small, "
                  "(b), and both ends are trained networks measured on test images, so it is not overfitting, "
                  "(c)."),
    Question("c", "Weight rewinding sets the surviving weights back to their values at iteration k and replays "
                  "the learning-rate schedule from k; learning-rate rewinding keeps the trained weights and "
                  "replays only the schedule. (a) describes fine-tuning, which keeps the trained weights at the "
                  "final, small learning rate; and the two rewindings retrain for the same iterations, k to "
                  "the end, so (b) cannot be what separates them."),
    Question("b", "Each accuracy on 1,000 test images carries a 95% interval of about ±3.1 points, and the "
                  "difference of two such accuracies about ±4.4, so one point says "
                  "nothing by itself. (a) reads noise as a result; (c) overreaches: the rewound-to-0 ticket is "
                  "not worse than the dense network here, and the case against iteration 0 rests on the "
                  "instability analysis and on the papers' longer runs."),
)

QUIZZES["07"] = (
    Question("a", "Shuffling keeps each layer's number of weights and moves them to random places within the "
                  "layer; if accuracy does not drop, where the method put the weights inside a layer did not "
                  "matter, only how many each layer kept (Frankle et al. 2021 found this for SNIP, GraSP and "
                  "SynFlow). It does not make the method no better than random pruning, (b): random pruning "
                  "keeps the same fraction of every layer, and the method's per-layer fractions are what it "
                  "found. The initial values, (c), are what the reinit check tests, not the shuffle."),
    Question("b", "SynFlow's scores of a layer add up to the same total whatever its width (Tanaka et al.'s "
                  "conservation law), so as a layer thins its surviving weights score higher, and recomputing "
                  "after each small step stops pruning a layer before it empties: no layer collapse. It uses no "
                  "batches at all, (a): its input is one all-ones image. One step of SynFlow is not magnitude "
                  "pruning, (c): its scores weigh each weight by the paths through it."),
    Question("c", "GraSP removes the weights whose removal raises the gradient's norm the most (or lowers it the "
                  "least): in lthkit's convention those have the most negative scores w * Hg and go first. Their "
                  "absolute values are large, so ranking by them would keep exactly those weights: the order "
                  "changes, (a) is wrong. |w * Hg| is not SNIP's |g * w|, (b): H is the Hessian."),
)


QUIZZES["08"] = (
    Question("b", "The weights are exactly the ones drawn at the start (the notebook checks them bit for bit) and "
                  "only the scores were trained, so everything the network learned is which weights to keep. A "
                  "mask is a lot of information, (b): one bit for each of 266,200 weights, more than enough to "
                  "encode a classifier. The weights did not learn through the mask, (a): they never changed; and "
                  "a random network without a learned mask classifies at chance, (c), about 10%."),
    Question("a", "Whether a weight is kept is a step function of its score: its derivative is zero wherever it "
                  "is defined, so plain back-propagation would give the scores no gradient and they would never "
                  "move. The straight-through estimator passes the gradient of the masked weight to the score as "
                  "if the step were the identity. It makes nothing faster, (b), and the sparsity is exact because "
                  "of the top-k, not of the gradient, (c)."),
    Question("c", "The two controls draw the very same fresh magnitudes and differ only in the signs, so the gap "
                  "between them is the signs' doing: the ticket's initial signs (with its mask) carry most of what "
                  "makes it train well, as Zhou et al. (2019) found. The magnitudes are not what matters most, "
                  "(a): they were replaced in both controls. Nor are signs irrelevant, (b): with random signs "
                  "the reinit control falls behind."),
)


QUIZZES["09"] = (
    Question("a", "A layer norm's scale multiplies one feature of every token, and a position or the class token is "
                  "added to a whole token: each is one number with a role of its own, not one connection among "
                  "many, so pruning one removes a feature or a position everywhere. They are also few (2.5% of "
                  "the parameters). lthkit could mask them like any tensor, (b); and their magnitudes, (c), are "
                  "not why: layer-norm scales start at 1, the largest values in the network."),
    Question("b", "Chen et al. (2020) rewound to the pre-trained BERT weights: they are where every fine-tuning "
                  "starts, far along in training, so they play the part of late rewinding's iteration k. Tickets "
                  "rewound to a random initialisation, (a), did not match, which is the finding notebook 06 showed "
                  "for deep networks; the fine-tuned weights, (c), are what IMP prunes by, not where it rewinds to."),
    Question("a", "The head has only 640 weights and every class is read from it: pruned as hard as the rest, a "
                  "few rounds would leave each class a handful of connections. The paper prunes LeNet's output "
                  "layer at half the hidden layers' rate for the same reason. Its weights are not the largest, "
                  "(b), and it is pruned, (c), only more slowly."),
)


QUIZZES["10"] = (
    Question("b", "A mask only sets weights to zero: the file still holds every weight (and the mask beside it) and "
                  "every multiplication still happens, zeros included, so the masked ticket measured as large "
                  "and exactly as fast as the dense network. It saves bytes once stored in a format that skips "
                  "the zeros, and time only with a kernel that skips them, (a) and (c) are what it does not do."),
    Question("c", "torch.sparse's CSR product reads an index with every kept weight and skips the rest: it wins "
                  "once few weights are kept and the layer is large enough for the skipped work to outweigh the "
                  "call's fixed cost, earlier the larger the layer (a 4096 x 4096 layer from about a fifth kept, "
                  "LeNet's fc1 little and not reliably). Batch 1 is no rule, (a): on LeNet's fc1 at batch 1 CSR "
                  "lost down to 5% kept and at best broke even below; and small layers, (b), are where it pays "
                  "least."),
    Question("a", "Removing whole channels leaves a smaller dense network: the same dense kernels, on any runtime, "
                  "do less work, so it is faster at batch 1 and 64 alike. It costs accuracy at the same number "
                  "of weights, (b) is the trade, not a free lunch; and no sparse kernel is involved, (c)."),
)

QUIZZES["11"] = (
    Question("c", "A ticket is its mask together with the values its survivors had at the rewind point, so both move: "
                  "the mask on the ticket's own initial weights. The trained weights, (a), would make it fine-tuning "
                  "(transfer learning), not a ticket trained from its start; the mask on the target's own "
                  "initialisation, (b), is the mask alone, which is what the reinit arm measures."),
    Question("a", "A moved ticket that trains as well as the target's own and better than the random mask and the "
                  "reinit control says that, for this network, this pair of runs and this budget, what IMP found on "
                  "the source also helps on the target. It does not show that tickets move everywhere, (b): Morcos "
                  "et al. found it within natural images, for large networks, and better from larger datasets; nor "
                  "that the two datasets are one task, (c): their images and classes differ."),
    Question("b", "Morcos et al. found tickets from larger datasets transferred better. MNIST and Fashion-MNIST have "
                  "the same number of training images (60,000, of which lthkit trains on 55,000), so this notebook "
                  "cannot vary the source's size, (a) is wrong; and LeNet-300-100 prunes well, (c)."),
)

QUIZZES["12"] = (
    Question("b", "RigL grows the dead positions where the loss's gradient is largest in magnitude: the weights that "
                  "would lower the loss fastest once they may move. The sign, (a), only says which way such a weight "
                  "would move; ranking by the signed gradient keeps the most negative gradients last, half of the "
                  "useful positions. Random growth, (c), is SET's."),
    Question("c", "A grown weight starts at zero and its optimiser state is reset, so it enters as a weight that "
                  "never moved and the loss does not jump. Keeping the moments of a connection dropped earlier, (a), "
                  "would give it a step it never earned; a random value, (b), would perturb the trained network at "
                  "every update."),
    Question("a", "IMP's ticket of round r costs r + 1 trainings (the dense one, and one per round, the last being "
                  "its own); SET and RigL train once, at the final sparsity from the first step, which is the point "
                  "of training sparse from the start. RigL's dense gradient every 100 steps, (b), adds a little to "
                  "one training, not trainings; and its count does not depend on the sparsity, (c)."),
)

def letters(answer) -> list[str] | None:
    """``"b a c"``, ``"B,A,C"``, ``"bac"`` or ``["b", "a", "c"]`` as ``["b", "a", "c"]``; None if unreadable."""
    text = " ".join(answer) if isinstance(answer, (list, tuple)) else answer
    if not isinstance(text, str):
        return None
    found = re.sub(r"[\s,;/.()]+", "", text.lower())
    return list(found) if found.isalpha() else None


def quiz_verdict(notebook: str, answer) -> Verdict:
    questions = QUIZZES[notebook]
    given = letters(answer)
    if given is None or len(given) != len(questions):
        return Verdict(False, f"give {len(questions)} letters in order, such as \"b a c\", not {answer!r}.")
    lines, right = [], 0
    for i, (letter, q) in enumerate(zip(given, questions), start=1):
        ok = letter == q.correct
        right += ok
        lines.append(f"  {i}. {'right' if ok else f'not {letter}: it is {q.correct}'}. {q.why}")
    return Verdict(right == len(questions), f"{right} of {len(questions)} right.\n" + "\n".join(lines))


def _register(notebook: str) -> None:
    exercise(f"{notebook}.quiz")(lambda answer: quiz_verdict(notebook, answer))


for _notebook in QUIZZES:
    _register(_notebook)
