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

from lthkit.exercises import Verdict, exercise


@dataclass(frozen=True)
class Question:
    correct: str  # the right option's letter
    why: str  # shown once the question is answered, right or wrong


QUIZZES: dict[str, tuple[Question, ...]] = {
}


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
