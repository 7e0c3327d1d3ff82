"""What every code checker shares: running the learner's function, naming its mistake, the verdict."""

from __future__ import annotations

import traceback
from collections.abc import Callable

import torch
from torch import nn

from lthkit.course.verdicts import Verdict

NOT_WRITTEN = "not written yet: replace `raise NotImplementedError()` with your code, then run both cells again."
PAPER_RATES = {"fc": 0.2, "output": 0.1}
CHECKER_FAILED = "the checker itself failed on your function"


class Mistake(Exception):
    """What the learner's function got wrong, in words that name the mistake."""


def _run(fn: Callable, *args):
    try:
        return fn(*args)
    except NotImplementedError:
        raise
    except Mistake:
        raise
    except Exception as e:  # the learner's own error, shown as the learner would see it
        where = traceback.extract_tb(e.__traceback__)[-1]
        hint = ""
        if isinstance(e, AttributeError) and "NoneType" in str(e) and ".grad" in (where.line or ""):
            hint = ("; a gradient is None until loss.backward() computes it (and again after "
                    "optimizer.zero_grad()): mask gradients after backward")
        raise Mistake(f"your function raised {type(e).__name__}: {e} (line {where.lineno}: "
                      f"{where.line or '?'}){hint}") from None


def _judge(name: str, cases: Callable[[], str]) -> Verdict:
    try:
        passed = cases()
    except NotImplementedError:
        return Verdict(False, NOT_WRITTEN)
    except Mistake as m:
        return Verdict(False, str(m))
    except Exception as e:  # the checker's own failure: said as such, never a traceback in the learner's notebook
        where = traceback.extract_tb(e.__traceback__)[-1]
        return Verdict(False, f"{CHECKER_FAILED} ({type(e).__name__}: {e}, {where.filename}:{where.lineno}); "
                              f"your function may still be right: please report this to your teacher")
    return Verdict(True, f"your {name} {passed}")


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def _same(a: dict, b: dict, names=None) -> bool:
    return all(torch.equal(a[n], b[n]) for n in (names or a))
