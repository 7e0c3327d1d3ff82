"""Notebook 08's code exercises: edge-popup's mask and Zhou et al.'s signs, by hand."""

from __future__ import annotations

import math
import re

import torch

from lthkit.course.code_exercises.common import Mistake, _judge, _run
from lthkit.course.verdicts import Verdict, exercise
from lthkit.rewind import keep_signs
from lthkit.seeds import generator
from lthkit.supermask import top_k_mask

DEVICE_ERROR = re.compile(r"expected device|same device|is not on the expected|on device .* is not", re.I)


def _allowed_counts(density: float, n: int) -> set[int]:
    """``round(density * n)``, as the notebook says, or halves up, as lthkit counts: they differ only at .5."""
    return {round(density * n), math.floor(density * n + 0.5)}


def _count_mistake(count: int, density: float, n: int, where: str) -> str:
    """Name what a wrong count of kept weights comes from: floor, ceil, or one off at a threshold."""
    x, right = density * n, round(density * n)
    said = f"at density {density} of {where} keep round({density} * {n}) = {right:,}, not {count:,}"
    if count == math.floor(x) != right:
        return f"{said}: int() rounds down (as math.floor does); use round(density * n)"
    if count == math.ceil(x) != right:
        return f"{said}: math.ceil rounds up; use round(density * n)"
    if count == right + 1:
        return (f"{said}, one too many: check the threshold's comparison (> or >=) and which k-th value you take, "
                "or keep topk(k)'s indices")
    if count == right - 1:
        return (f"{said}, one too few: check the threshold's comparison (> or >=) and which k-th value you take, "
                "or keep topk(k)'s indices")
    if count == n - right:
        return f"{said}: you counted the weights to drop; density is the share kept"
    return said


def _top_k_case(fn, scores: torch.Tensor, density: float) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The learner's mask of ``scores`` (a leaf that requires grad) and the gradient it passes back
    for an upstream gradient of 1, 2, 3, ..."""
    given = scores.clone().requires_grad_()
    try:
        out = _run(fn, given, density)
    except Mistake as m:
        if "in-place operation" in str(m):
            raise Mistake("you changed the scores in place (an operation ending in _, such as abs_()): they are the "
                          "parameters being learned; build a new tensor, scores.abs()") from None
        raise
    if not torch.equal(given.detach(), scores):
        raise Mistake("you changed the scores in place: they are the parameters being learned; build a new tensor")
    if out is None:
        raise Mistake("your function returned None: return the mask")
    if not isinstance(out, torch.Tensor) or out.shape != scores.shape:
        raise Mistake(f"return one mask value per score, a tensor of shape {tuple(scores.shape)}, "
                      f"not {getattr(out, 'shape', type(out).__name__)}")
    if out.dtype == torch.bool:
        raise Mistake("your mask is bool: the weights are multiplied by it and the gradient must reach the scores; "
                      "return a float mask in the scores' dtype, hard.to(scores.dtype) + (a - a.detach())")
    values = out.detach()
    if not bool(((values == 0) | (values == 1)).all()):
        if bool((((values - 0).abs() < 1e-4) | ((values - 1).abs() < 1e-4)).all()):
            raise Mistake("your mask is 0 or 1 only up to rounding (such as 0.99999994): (hard + a) - a rounds; "
                          "add the difference in brackets, hard + (a - a.detach()), which is exactly 0")
        raise Mistake("your mask holds values other than 0 and 1: keep (1) or drop (0) each weight")
    if out.dtype != scores.dtype:
        raise Mistake(f"return the mask in the scores' dtype ({scores.dtype}), not {out.dtype}: the weights are "
                      "multiplied by it (torch.zeros_like(scores) has the right dtype and device)")
    upstream = torch.arange(1.0, scores.numel() + 1).view_as(scores)
    grad = torch.autograd.grad((out * upstream).sum(), given, allow_unused=True)[0] if out.requires_grad else None
    return values, grad


def _ties(fn, scores: torch.Tensor, density: float, said: str) -> None:
    """Scores with ties at the cut: exactly round(density * n) kept, none smaller than one dropped."""
    mask, _ = _top_k_case(fn, scores, density)
    n, count = scores.numel(), int(mask.sum())
    if count not in _allowed_counts(density, n):
        right = round(density * n)
        how = (">= at the threshold keeps every score tied with the k-th largest" if count > right else
               "> at the threshold drops every score tied with the k-th largest")
        raise Mistake(f"{said} you kept {count}, not {right}: {how}; with ties keep exactly k, such as "
                      "topk(k)'s indices (it breaks ties)")
    a = scores.abs()
    if count and count < n and float(a[mask == 1].min()) < float(a[mask == 0].max()):
        raise Mistake(f"{said} a kept |score| is smaller than a dropped one: keep the largest")


def _device_case(fn) -> None:
    """Scores on another device (``meta``, which holds no values): a mask made on the CPU does not follow them,
    as it would not follow a GPU's. Errors of other kinds (an op ``meta`` lacks, .item()) tell nothing."""
    scores = torch.zeros(4, 5, device="meta").requires_grad_()
    try:
        out = fn(scores, 0.4)
    except Exception as e:  # noqa: BLE001 - only a device mismatch is the learner's mistake here
        if not DEVICE_ERROR.search(str(e)):
            return
        out = None
    if out is None or (isinstance(out, torch.Tensor) and out.device != scores.device):
        raise Mistake("your mask is made on the CPU whatever device the scores are on, so on a GPU it fails: create "
                      "it like the scores, torch.zeros_like(a) or device=scores.device")


@exercise("08.top-k-mask", reference=top_k_mask)
def _top_k_mask_exercise(fn) -> Verdict:
    def cases() -> str:
        scores = torch.tensor([0.3, -0.9, 0.1, 0.5, -0.2, 0.05, -0.6, 0.7, -0.15, 0.25])
        mask, grad = _top_k_case(fn, scores, 0.3)
        right = torch.zeros(10)
        right[[1, 7, 6]] = 1
        if not torch.equal(mask, right):
            signed, smallest = torch.zeros(10), torch.zeros(10)
            signed[[7, 3, 0]] = 1
            smallest[[5, 2, 8]] = 1
            if torch.equal(mask, signed):
                raise Mistake("you kept the largest scores with their signs (0.7, 0.5, 0.3): edge-popup keeps the "
                              "largest |score|, so -0.9 and -0.6 are kept too; rank scores.abs()")
            if torch.equal(mask, smallest):
                raise Mistake("you kept the smallest |scores|: edge-popup keeps the largest (topk's default, "
                              "largest=True)")
            if torch.equal(mask, 1 - right):
                raise Mistake("your mask is inverted: 1 must mark the 3 kept weights (largest |score|), 0 the "
                              "dropped ones")
            if int(mask.sum()) != 3:
                raise Mistake(_count_mistake(int(mask.sum()), 0.3, 10, "10 scores"))
            raise Mistake("keep the weights of the 3 largest |scores| (here -0.9, 0.7 and -0.6)")
        if grad is None or not bool(grad.ne(0).any()):
            raise Mistake("no gradient reaches the scores: the 0/1 mask is a step, whose derivative is zero. "
                          "Pass the gradient straight through: return hard + (a - a.detach()) with a = scores.abs()")
        upstream = torch.arange(1.0, 11.0)
        if bool((grad[right == 0] == 0).all()):
            raise Mistake("only the kept weights' scores get a gradient, so a dropped weight can never come back: "
                          "pass the gradient to every score, hard + (a - a.detach()), not hard * a")
        if not (torch.equal(grad, upstream * scores.sign()) or torch.equal(grad, upstream)):
            raise Mistake("the gradient should reach every score unchanged (straight through |score|): return "
                          "hard + (a - a.detach()) with a = scores.abs()")
        table = torch.tensor([[0.9, 0.8, 0.7, 0.6, 0.5], [0.1, 0.2, 0.3, 0.4, -0.05]])
        mask, _ = _top_k_case(fn, table, 0.4)
        whole = (table.abs() >= 0.6).float()
        if not torch.equal(mask, whole):
            if mask.sum(1)[0] == mask.sum(1)[1]:
                raise Mistake("you kept the top scores of each row: a layer's scores compete all together; "
                              "rank the flattened tensor (scores.abs().flatten().topk(k))")
            raise Mistake("on a 2x5 tensor at density 0.4, keep the 4 largest |scores| of the whole tensor")
        for density in (0.37, 0.33):
            mask, _ = _top_k_case(fn, torch.tensor([0.15, -0.95, 0.35, 0.75, -0.45, 0.05, -0.65, 0.85, -0.25, 0.55]),
                                  density)
            if int(mask.sum()) != round(density * 10):
                raise Mistake(_count_mistake(int(mask.sum()), density, 10, "10 scores"))
        _ties(fn, torch.full((10,), 0.5), 0.3, "with all 10 |scores| equal, at density 0.3")
        _ties(fn, torch.tensor([0.9, -0.5, 0.5, 0.2, 0.5, -0.5, 0.1, 0.3, -0.5, 0.05]), 0.3,
              "with four |scores| tied at 0.5 for the last 2 of 3 places (density 0.3),")
        _device_case(fn)
        layer = torch.randn(300, 100, generator=generator("check", 8))
        for density in (0.05, 0.5, 0.9):
            mask, _ = _top_k_case(fn, layer, density)
            if int(mask.sum()) not in _allowed_counts(density, layer.numel()):
                raise Mistake(_count_mistake(int(mask.sum()), density, layer.numel(), "fc2's 30,000 scores"))
            if float(layer.abs()[mask == 1].min()) < float(layer.abs()[mask == 0].max()):
                raise Mistake(f"at density {density} on fc2's scores a kept |score| is smaller than a dropped one")
        return ("keeps exactly round(density * n) weights of largest |score| across the whole tensor, ties "
                "included, and passes the gradient straight through to every score.")
    return _judge("top_k_mask", cases)


def _keep_signs_values(out: torch.Tensor, initial: torch.Tensor, fresh: torch.Tensor) -> None:
    """Name what ``out`` is when it is not |fresh| with the sign of initial, on the hand-made case."""
    right = torch.copysign(fresh.abs(), initial)
    if torch.equal(out, right):
        return
    if torch.allclose(out, right):
        raise Mistake("close, but not exactly |fresh| with the initial sign: avoid arithmetic that rounds "
                      "(torch.copysign(fresh.abs(), initial), or fresh.abs() * initial.sign())")
    named = [
        (fresh * initial.sign(), "fresh * sign(initial) flips the sign wherever the fresh value is negative: take "
                                 "the fresh magnitude first, fresh.abs() * initial.sign()"),
        (fresh, "those are the fresh weights with their own signs: give each |fresh| with the sign of initial"),
        (initial, "those are the initial weights themselves (the ticket): keep only their signs and take the "
                  "magnitudes from fresh"),
        (initial.abs() * fresh.sign(), "the roles are swapped: the magnitudes come from fresh, the signs from "
                                       "initial"),
        (fresh.abs(), "every weight is positive: give each the sign its initial value had"),
        (-right, "every sign is the opposite of the initial one: multiply by initial.sign(), not -initial.sign()"),
        (fresh.abs() * (initial > 0), "the weights whose initial value is negative became 0: (initial > 0) is 0 or "
                                      "1, a sign is -1 or 1; use initial.sign() or torch.copysign"),
        (fresh.abs() * initial, "you multiplied |fresh| by the initial weight itself: multiply by its sign only, "
                                "initial.sign()"),
    ]
    for wrong, said in named:
        if torch.allclose(out, wrong.to(out.dtype)):
            raise Mistake(said)
    if torch.allclose(out.abs(), out.abs()[0].expand_as(out)):
        raise Mistake("every weight has the same magnitude: that is a signed constant; take the magnitudes from fresh")
    raise Mistake("each weight should be |fresh| with the sign of initial (here 0.3, -0.4, 0.6, -0.8, 0.05, -0.9)")


def _keep_signs_case(fn, initial: torch.Tensor, fresh: torch.Tensor) -> torch.Tensor:
    """The learner's tensor for (initial, fresh), refused if it is not a new tensor of fresh's shape and dtype."""
    given = initial.clone(), fresh.clone()
    out = _run(fn, *given)
    if not (torch.equal(given[0], initial) and torch.equal(given[1], fresh)):
        raise Mistake("you changed a tensor you were given in place: return a new one")
    if out is None:
        raise Mistake("your function returned None: return the new weights")
    if not isinstance(out, torch.Tensor):
        raise Mistake(f"return a tensor, not {type(out).__name__}")
    if out.shape != initial.shape:
        raise Mistake(f"return one weight per position, a tensor of shape {tuple(initial.shape)}, "
                      f"not {tuple(out.shape)}")
    if out.dtype != fresh.dtype:
        raise Mistake(f"return the dtype of `fresh` ({fresh.dtype}), not {out.dtype}: these are the weights the "
                      "model takes")
    return out.detach()


@exercise("08.keep-signs", reference=keep_signs)
def _keep_signs_exercise(fn) -> Verdict:
    def cases() -> str:
        initial = torch.tensor([0.5, -0.2, 0.1, -0.7, 0.3, -0.05])
        fresh = torch.tensor([-0.3, -0.4, 0.6, 0.8, 0.05, -0.9])
        _keep_signs_values(_keep_signs_case(fn, initial, fresh), initial, fresh)
        g = generator("check", 8)
        big_initial, big_fresh = torch.randn(300, 100, generator=g), torch.randn(300, 100, generator=g)
        out = _keep_signs_case(fn, big_initial, big_fresh)
        if not (torch.equal(out.abs(), big_fresh.abs()) and torch.equal(out.sign(), big_initial.sign())):
            raise Mistake("on a 300x100 layer your function does not give |fresh| with the initial signs everywhere")
        return "gives every weight its fresh magnitude and its initial sign."
    return _judge("keep_signs", cases)
