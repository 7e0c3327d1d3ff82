"""Write students' copies of the course's notebooks, with the solutions taken out.

    .venv/bin/python tools/student_copies.py [OUTDIR]      (default build/student; `make student`)

A solution is marked one way only, as nbgrader marks it: a cell tagged ``solution`` (in this
course a collapsed markdown cell after each exercise's checker). Each copy drops those cells
and, as nbgrader's release step does, clears every output and execution count: students should
see what *their* run prints, not the committed run's numbers, which answer the exercises about
"your run". The static site (`make site`) is where the committed outputs are read.
The saved widget state goes with the outputs it belonged to. Everything else is kept as it
is, in order: the learning goals, the ``parameters`` cell, the ``answer = None`` and checker
cells (the checkers compute the right answer themselves, in ``lthkit/exercises.py``).

A cell that looks like a solution but lacks the tag stops the script: a forgotten tag would
hand out an answer silently.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
SOLUTION_TAG = "solution"
LOOKS_LIKE_A_SOLUTION = "<summary>Solution"


def is_solution(cell) -> bool:
    return SOLUTION_TAG in cell.metadata.get("tags", [])


def student_copy(nb):
    """A copy of notebook ``nb`` without its solutions and outputs; ``nb`` is left as it was."""
    nb = nbformat.from_dict(nb)  # a deep copy
    for cell in nb.cells:
        if LOOKS_LIKE_A_SOLUTION in cell.source and not is_solution(cell):
            raise ValueError(f"cell {cell.get('id')} reads like a solution but is not tagged {SOLUTION_TAG!r}")
    nb.cells = [c for c in nb.cells if not is_solution(c)]
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cell.metadata.pop("execution", None)
        cell.metadata.pop("papermill", None)
    nb.metadata.pop("widgets", None)
    nb.metadata.pop("papermill", None)
    return nb


def course_notebooks(folder: Path = NOTEBOOKS) -> list[Path]:
    return sorted(folder.glob("[0-9][0-9]_*.ipynb"))


def write_student_copies(out_dir: str | Path, notebooks: list[Path] | None = None) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in notebooks or course_notebooks():
        copy = student_copy(nbformat.read(path, as_version=4))
        nbformat.validate(copy)
        nbformat.write(copy, out / path.name)
        written.append(out / path.name)
    return written


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "build" / "student"
    for p in write_student_copies(out):
        print(p)
