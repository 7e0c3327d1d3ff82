"""What every checker of the course returns, and the registry ``check("NN.name", ...)`` looks in.

The typed answers (``lthkit.course.exercises``), the learner's code (``lthkit.course.code_exercises``) and the
quizzes (``lthkit.course.quizzes``) each register their checkers here, so that none of them imports
another.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Verdict:
    correct: bool
    message: str

    def __str__(self) -> str:
        return ("✓ " if self.correct else "✗ ") + self.message


EXERCISES: dict[str, Callable[..., Verdict]] = {}
REFERENCES: dict[str, Callable] = {}  # code exercise -> lthkit's own function, with the learner's signature


def exercise(name: str, reference: Callable | None = None):
    """Register the decorated function as the checker of exercise ``name``; for a code exercise,
    ``reference`` is lthkit's own implementation, which a notebook runs on while the learner's is
    unwritten (``lthkit.course.yours``)."""
    def register(fn):
        EXERCISES[name] = fn
        if reference is not None:
            REFERENCES[name] = reference
        return fn
    return register
