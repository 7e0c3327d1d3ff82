"""The learner's function, or lthkit's while theirs is unwritten: a student copy runs end to end.

A code exercise's cell defines the learner's function under ``@course.yours("02.prune-layer")``.
While the body is still the stub (``raise NotImplementedError()``), a call prints one line, once,
and returns what lthkit's own implementation (the exercise's reference) returns, so "Run All"
reaches the end of the notebook and every later section runs. The checker still judges the
learner's own function (``learners_own``) and says it is not written. Once written, the learner's
function runs as it is, mistakes included: the notebook then shows what their code does.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from lthkit.course import code_exercises  # noqa: F401  (importing it registers the references)
from lthkit.course.verdicts import REFERENCES

FALLBACK = ("your `{name}` is not written yet; the cells below use lthkit's own so that the notebook runs on; "
            "write yours and run again")


def yours(exercise: str) -> Callable[[Callable], Callable]:
    """Decorate the learner's function for code exercise ``exercise`` (see the module's docstring)."""
    if exercise not in REFERENCES:
        known = ", ".join(sorted(REFERENCES))
        raise KeyError(f"no code exercise {exercise!r} with a reference implementation; known: {known}")
    reference = REFERENCES[exercise]

    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def run(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except NotImplementedError:
                if not run.fell_back:
                    print(FALLBACK.format(name=fn.__name__))
                    run.fell_back = True
                return reference(*args, **kwargs)

        run.learners_own = fn
        run.fell_back = False
        run.exercise = exercise
        return run

    return wrap


def learners_own(fn):
    """The learner's own function behind ``yours``'s wrapper (``fn`` itself when not wrapped)."""
    return getattr(fn, "learners_own", fn)
