"""Every code exercise against its suite of learners (tests/learners/): each wrong implementation is refused
with its mistake named, each right one passes, and no checker raises from its own code, whatever it is given.

The checker is called as the notebook's checker cell calls it (``check(name, fn, **context)``), through
``verdict``, the function ``check`` prints.
"""

import importlib
import re
from pathlib import Path

import pytest

from lthkit.course.code_exercises.common import CHECKER_FAILED
from lthkit.course.exercises import verdict
from lthkit.course.verdicts import EXERCISES

SUITES = {p.stem: importlib.import_module(f"learners.{p.stem}").suite
          for p in sorted((Path(__file__).parent / "learners").glob("[a-z]*.py"))}
MIN_WRONG, MIN_RIGHT = 10, 3
GENERIC = re.compile(r"not proportional to|something is wrong|not correct\b", re.I)


def _judge(suite, fn, request):
    context = suite.context(request.getfixturevalue)
    try:
        v = verdict(suite.exercise, fn, **context)
    except Exception as e:  # pragma: no cover - the failure message is the point
        pytest.fail(f"{suite.exercise}'s checker raised {type(e).__name__}: {e} on {fn.__name__}")
    assert CHECKER_FAILED not in v.message, v.message
    return v


def _cases(kind):
    return [pytest.param(name, i, id=f"{s.exercise}-{getattr(fn, '__name__', i)}")
            for name, s in SUITES.items() for i, fn in enumerate(getattr(s, kind))]


def test_every_code_exercise_has_a_suite_of_learners():
    code = {name for name, fn in EXERCISES.items() if fn.__module__.startswith("lthkit.course.code_exercises")}
    covered = {s.exercise for s in SUITES.values()}
    assert code <= covered, f"no learners for {sorted(code - covered)} in tests/learners/"
    for s in SUITES.values():
        assert len(s.wrongs) >= MIN_WRONG and len(s.rights) >= MIN_RIGHT, (
            f"{s.exercise}: {len(s.wrongs)} wrong and {len(s.rights)} right learners, at least {MIN_WRONG} and {MIN_RIGHT}")


@pytest.mark.parametrize("suite_name,index", _cases("wrongs"))
def test_a_wrong_learner_is_refused_with_its_mistake_named(suite_name, index, request):
    suite = SUITES[suite_name]
    wrong = suite.wrongs[index]
    v = _judge(suite, wrong.fn, request)
    assert not v.correct, f"{wrong.fn.__name__} passed: {v.message}"
    assert re.search(wrong.mistake, v.message, re.I), f"{wrong.fn.__name__}: expected /{wrong.mistake}/, got: {v.message}"
    assert not GENERIC.search(v.message), f"{wrong.fn.__name__}: a generic hint: {v.message}"


@pytest.mark.parametrize("suite_name,index", _cases("rights"))
def test_a_right_learner_passes(suite_name, index, request):
    suite = SUITES[suite_name]
    fn = suite.rights[index]
    v = _judge(suite, fn, request)
    assert v.correct, f"{fn.__name__} was refused: {v.message}"
