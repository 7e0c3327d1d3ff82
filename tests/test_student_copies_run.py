"""A learner's copy, with every function still the stub, runs end to end ("Run All") at the test budget.

Each code exercise's function sits under ``@course.yours(...)``: while it is unwritten, the cells that
use it print one line naming it and go on with lthkit's own, and its checker says it is not written.
Every student copy that has a code exercise is made as ``make student`` makes it and executed by
papermill, as a learner's "Run All" would, in a folder of its own.
"""

import re

import nbformat
import papermill
import pytest

from lthkit import kernels  # noqa: F401  (papermill's engine "lthkit": kernels on Unix sockets)
from lthkit.course.code_exercises import NOT_WRITTEN
from lthkit.course.fallback import FALLBACK

from test_classroom_tools import COURSE, load_tool

WITH_CODE = [p for p in COURSE if "### BEGIN SOLUTION" in p.read_text()]


def learner_functions(nb) -> dict[str, str]:
    """Each function the learner writes in ``nb`` and its exercise, from its ``@course.yours`` line."""
    found = {}
    for cell in nb.cells:
        found.update({fn: ex for ex, fn in re.findall(r'@course\.yours\("([\w.-]+)"\)\s*\ndef (\w+)\(', cell.source)})
    return found


def test_every_code_exercise_of_the_course_runs_on_while_unwritten():
    for path in WITH_CODE:
        nb = nbformat.read(path, as_version=4)
        solutions = sum(c.source.count("### BEGIN SOLUTION") for c in nb.cells if c.cell_type == "code")
        assert len(learner_functions(nb)) == solutions, f"{path.name}: a learner's function without @course.yours"


@pytest.mark.parametrize("path", WITH_CODE, ids=lambda p: p.name[:2])
def test_a_student_copy_with_every_stub_unwritten_runs_to_the_end_and_names_what_is_missing(path, tmp_path):
    student_copies = load_tool("student_copies")
    copy = student_copies.student_copy(nbformat.read(path, as_version=4), path.name)
    functions = learner_functions(copy)
    assert functions and all("raise NotImplementedError()" in c.source for c in copy.cells
                             if c.cell_type == "code" and "@course.yours" in c.source)
    source, ran = tmp_path / path.name, tmp_path / f"ran_{path.name}"
    nbformat.write(copy, source)
    papermill.execute_notebook(str(source), str(ran), parameters={"budget": "test", "output_dir": str(tmp_path / "out")},
                               cwd=str(tmp_path), progress_bar=False, log_output=False, engine_name="lthkit",
                               execution_timeout=600)
    printed = "\n".join("".join(o.get("text", "")) for c in nbformat.read(ran, as_version=4).cells
                        if c.cell_type == "code" for o in c.outputs)
    for fn, exercise in functions.items():
        fell_back = FALLBACK.format(name=fn) in printed
        checked = f"✗ {NOT_WRITTEN}" in printed
        assert fell_back or checked, f"{path.name}: nothing says that {fn} ({exercise}) is not written"
        assert printed.count(FALLBACK.format(name=fn)) <= 1, f"{path.name}: {fn}'s line printed more than once"
    assert printed.count(f"✗ {NOT_WRITTEN}") >= len(functions), "each unwritten function's checker says ✗"
