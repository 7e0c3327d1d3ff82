"""Notebook 08's code exercises: edge-popup's mask and Zhou et al.'s signs, by hand."""

from __future__ import annotations

import torch

from lthkit.course.code_exercises.common import Mistake, _judge, _run
from lthkit.course.verdicts import Verdict, exercise


def _top_k_case(fn, scores: torch.Tensor, density: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The learner's mask of ``scores`` (a leaf that requires grad) and the gradient it passes back
    for an upstream gradient of 1, 2, 3, ..."""
    given = scores.clone().requires_grad_()
    out = _run(fn, given, density)
    if not torch.equal(given.detach(), scores):
        raise Mistake("you changed the scores in place: they are the parameters being learned; build a new tensor")
    if not isinstance(out, torch.Tensor) or out.shape != scores.shape:
        raise Mistake(f"return one mask value per score, a tensor of shape {tuple(scores.shape)}, "
                      f"not {getattr(out, 'shape', type(out).__name__)}")
    values = out.detach()
    if not bool(((values == 0) | (values == 1)).all()):
        if bool((((values - 0).abs() < 1e-4) | ((values - 1).abs() < 1e-4)).all()):
            raise Mistake("your mask is 0 or 1 only up to rounding (such as 0.99999994): (hard + a) - a rounds; "
                          "add the difference in brackets, hard + (a - a.detach()), which is exactly 0")
        raise Mistake("your mask holds values other than 0 and 1: keep (1) or drop (0) each weight")
    upstream = torch.arange(1.0, scores.numel() + 1).view_as(scores)
    grad = torch.autograd.grad((out * upstream).sum(), given, allow_unused=True)[0] if out.requires_grad else None
    return values, grad


@exercise("08.top-k-mask")
def _top_k_mask_exercise(fn) -> Verdict:
    def cases() -> str:
        scores = torch.tensor([0.3, -0.9, 0.1, 0.5, -0.2, 0.05, -0.6, 0.7, -0.15, 0.25])
        mask, grad = _top_k_case(fn, scores, 0.3)
        right = torch.zeros(10)
        right[[1, 7, 6]] = 1
        if not torch.equal(mask, right):
            signed = torch.zeros(10)
            signed[[7, 3, 0]] = 1
            if torch.equal(mask, signed):
                raise Mistake("you kept the largest scores with their signs (0.7, 0.5, 0.3): edge-popup keeps the "
                              "largest |score|, so -0.9 and -0.6 are kept too; rank scores.abs()")
            if int(mask.sum()) != 3:
                raise Mistake(f"keep round(density * n) weights: 3 of 10 at density 0.3, not {int(mask.sum())}")
            raise Mistake("keep the weights of the 3 largest |scores| (here -0.9, 0.7 and -0.6)")
        if grad is None or not bool(grad.ne(0).any()):
            raise Mistake("no gradient reaches the scores: the 0/1 mask is a step, whose derivative is zero. "
                          "Pass the gradient straight through: return hard + (a - a.detach()) with a = scores.abs()")
        upstream = torch.arange(1.0, 11.0)
        if torch.equal(grad, upstream * right * scores.sign()) or torch.equal(grad, upstream * right):
            raise Mistake("only the kept weights' scores get a gradient, so a dropped weight can never come back: "
                          "pass the gradient to every score, hard + (a - a.detach()), not hard * a")
        if not (torch.equal(grad, upstream * scores.sign()) or torch.equal(grad, upstream)):
            raise Mistake("the gradient should reach every score unchanged (straight through |score|): return "
                          "hard + (a - a.detach()) with a = scores.abs()")
        table = torch.tensor([[0.9, 0.8, 0.7, 0.6, 0.5], [0.1, 0.2, 0.3, 0.4, -0.05]])
        mask, _ = _top_k_case(fn, table, 0.4)
        whole = (table.abs() >= 0.6).float()
        if not torch.equal(mask, whole):
            if torch.equal(mask.sum(1), torch.tensor([2.0, 2.0])):
                raise Mistake("you kept the top scores of each row: a layer's scores compete all together; "
                              "rank the flattened tensor (scores.abs().flatten().topk(k))")
            raise Mistake("on a 2x5 tensor at density 0.4, keep the 4 largest |scores| of the whole tensor")
        mask, _ = _top_k_case(fn, torch.linspace(-1, 1, 10), 0.37)
        if int(mask.sum()) != 4:
            raise Mistake(f"at density 0.37 of 10 scores keep round(3.7) = 4, not {int(mask.sum())}: int() rounds "
                          "down")
        torch.manual_seed(0)
        layer = torch.randn(300, 100)
        for density in (0.05, 0.5, 0.9):
            mask, _ = _top_k_case(fn, layer, density)
            if int(mask.sum()) != round(density * layer.numel()):
                raise Mistake(f"at density {density} on fc2's 30,000 scores keep {round(density * 30000):,}, "
                              f"not {int(mask.sum()):,}")
            if float(layer.abs()[mask == 1].min()) < float(layer.abs()[mask == 0].max()):
                raise Mistake(f"at density {density} on fc2's scores a kept |score| is smaller than a dropped one")
        return ("keeps exactly round(density * n) weights of largest |score| across the whole tensor and passes "
                "the gradient straight through to every score.")
    return _judge("top_k_mask", cases)


@exercise("08.keep-signs")
def _keep_signs_exercise(fn) -> Verdict:
    def cases() -> str:
        initial = torch.tensor([0.5, -0.2, 0.1, -0.7, 0.3, -0.05])
        fresh = torch.tensor([-0.3, -0.4, 0.6, 0.8, 0.05, -0.9])
        right = torch.tensor([0.3, -0.4, 0.6, -0.8, 0.05, -0.9])
        given = initial.clone(), fresh.clone()
        out = _run(fn, *given)
        if not (torch.equal(given[0], initial) and torch.equal(given[1], fresh)):
            raise Mistake("you changed a tensor you were given in place: return a new one")
        if not isinstance(out, torch.Tensor) or out.shape != initial.shape:
            raise Mistake(f"return one weight per position, a tensor of shape {tuple(initial.shape)}")
        if torch.allclose(out, right):
            if not torch.equal(out, right):
                raise Mistake("close, but not exactly |fresh| with the initial sign: avoid arithmetic that rounds "
                              "(torch.copysign(fresh.abs(), initial), or fresh.abs() * initial.sign())")
        elif torch.allclose(out, fresh * initial.sign()):
            raise Mistake("fresh * sign(initial) flips the sign wherever the fresh value is negative: take the "
                          "fresh magnitude first, fresh.abs() * initial.sign()")
        elif torch.allclose(out, initial):
            raise Mistake("those are the initial weights themselves (the ticket): keep only their signs and take "
                          "the magnitudes from fresh")
        elif torch.allclose(out, initial.abs() * fresh.sign()):
            raise Mistake("the roles are swapped: the magnitudes come from fresh, the signs from initial")
        elif torch.allclose(out, fresh.abs()):
            raise Mistake("every weight is positive: give each the sign its initial value had")
        elif torch.allclose(out.abs(), out.abs()[0].expand_as(out)):
            raise Mistake("every weight has the same magnitude: that is a signed constant; take the magnitudes "
                          "from fresh")
        else:
            raise Mistake("each weight should be |fresh| with the sign of initial (here 0.3, -0.4, 0.6, -0.8, "
                          "0.05, -0.9)")
        torch.manual_seed(0)
        big_initial, big_fresh = torch.randn(300, 100), torch.randn(300, 100)
        out = _run(fn, big_initial.clone(), big_fresh.clone())
        if not (isinstance(out, torch.Tensor) and out.shape == big_initial.shape
                and torch.equal(out.abs(), big_fresh.abs()) and torch.equal(out.sign(), big_initial.sign())):
            raise Mistake("on a 300x100 layer your function does not give |fresh| with the initial signs everywhere")
        return "gives every weight its fresh magnitude and its initial sign."
    return _judge("keep_signs", cases)
