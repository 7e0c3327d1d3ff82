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


def exercise(name: str):
    """Register the decorated function as the checker of exercise ``name``."""
    def register(fn):
        EXERCISES[name] = fn
        return fn
    return register
