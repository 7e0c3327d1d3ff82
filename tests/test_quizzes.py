"""Every notebook ends with a three-question quiz whose key matches the questions it prints."""

import re
from pathlib import Path

import nbformat
import pytest

from lthkit.course.exercises import verdict
from lthkit.course.quizzes import QUIZZES, letters

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def quiz_questions(path: Path) -> list[set[str]]:
    """The option letters of each question in the notebook's "## Quiz" cell."""
    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "markdown" and c.source.startswith("## Quiz"))
    blocks = re.split(r"\*\*\d\.\*\*", cell.source)[1:]
    return [set(re.findall(r"^(?:- )?\(([a-e])\)", block, flags=re.M)) for block in blocks]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name[:2])
def test_each_notebook_has_a_quiz_whose_key_names_one_of_its_options(path):
    questions = quiz_questions(path)
    key = QUIZZES[path.name[:2]]
    assert len(questions) == len(key) == 3
    for options, question in zip(questions, key):
        assert len(options) >= 3 and question.correct in options
    nb = nbformat.read(path, as_version=4)
    assert any(f'check("{path.name[:2]}.quiz", quiz)' in c.source for c in nb.cells if c.cell_type == "code")


def test_the_quiz_checker_reads_letters_in_any_spelling_and_says_which_are_wrong():
    right = [q.correct for q in QUIZZES["03"]]
    for spelling in (" ".join(right), ",".join(right).upper(), "".join(right), right):
        assert verdict("03.quiz", spelling).correct
    wrong = ["a" if right[0] != "a" else "b"] + right[1:]
    v = verdict("03.quiz", wrong)
    assert not v.correct and "2 of 3 right" in v.message and f"it is {right[0]}" in v.message
    assert not verdict("03.quiz", "ab").correct
    assert letters("b 2 c") is None
