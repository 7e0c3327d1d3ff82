"""Write students' copies of the course's notebooks, with the solutions taken out.

    .venv/bin/python tools/student_copies.py [OUTDIR]              (default build/student; `make student`)
    .venv/bin/python tools/student_copies.py --keep-existing DIR   (what `make lab` runs, into student/)

Solutions are marked as nbgrader marks them, two ways:

- a cell tagged ``solution`` (in this course a collapsed markdown cell after each exercise's
  checker) is dropped;
- in a code cell, the lines from ``### BEGIN SOLUTION`` to ``### END SOLUTION`` (both included)
  are replaced, at the indentation of the ``BEGIN`` line, by ``# YOUR CODE HERE`` and
  ``raise NotImplementedError()``: exactly what nbgrader's ``ClearSolutions`` preprocessor does
  (in a markdown cell the region becomes ``YOUR ANSWER HERE``). A cell may hold several regions.
  A ``BEGIN`` without its ``END``, an ``END`` without its ``BEGIN``, a nested ``BEGIN`` or a
  marker sharing its line with code stops the script, naming the notebook and the cell.

Cells tagged ``test-only`` (those that move a slider from code, for the tests) are dropped too.
Each copy, as nbgrader's release step does, has every output and execution count cleared:
students should see what *their* run prints, not the committed run's numbers, which answer the
exercises about "your run". The static site (`make site`) is where the committed outputs are read.
The saved widget state goes with the outputs it belonged to. Everything else is kept as it
is, in order: the learning goals, the ``parameters`` cell, the ``answer = None`` and checker
cells (the checkers compute the right answer themselves, in ``lthkit/course/exercises.py``).

A cell that looks like a solution but lacks the tag stops the script: a forgotten tag would
hand out an answer silently.

Beside the copies goes ``notebooks/figures/`` (pictures the notebooks show by a relative path).
The datasets (``lthkit.data.data_root``: ``$LTHKIT_DATA``, else the repository's ``data/``) and
the reference runs (``lthkit.course.REFERENCE_DIR``) are found from lthkit's own location, not
from the current folder, so a copy runs from any folder of a machine where `make install` was done.

``--keep-existing`` never overwrites: only notebooks (and figure files) missing from DIR are
written, and each one kept is named. That is how a learner's folder is refreshed without
losing their work. Without it (the teacher's release, `make student`) every copy is rewritten.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
FIGURES = "figures"
SOLUTION_TAG = "solution"
TEST_ONLY_TAG = "test-only"
LOOKS_LIKE_A_SOLUTION = "<summary>Solution"

# nbgrader's defaults (ClearSolutions.begin_solution_delimeter, end_solution_delimeter, code_stub,
# text_stub); a marker is a comment alone on its line, such as "### BEGIN SOLUTION".
BEGIN, END = "BEGIN SOLUTION", "END SOLUTION"
MARKER = re.compile(r"^(?P<indent>\s*)#+\s*(?P<which>BEGIN|END) SOLUTION\s*$")
CODE_STUB = ["# YOUR CODE HERE", "raise NotImplementedError()"]
TEXT_STUB = ["YOUR ANSWER HERE"]


class SolutionMarkerError(ValueError):
    """Solution markers that do not pair up, named by notebook and cell."""


def is_solution(cell) -> bool:
    return SOLUTION_TAG in cell.metadata.get("tags", [])


def is_test_only(cell) -> bool:
    return TEST_ONLY_TAG in cell.metadata.get("tags", [])


def clear_solutions(source: str, stub: list[str] = CODE_STUB, where: str = "cell") -> str:
    """``source`` with each region ``BEGIN SOLUTION`` ... ``END SOLUTION`` replaced by ``stub``,
    indented as the ``BEGIN`` line is (nbgrader's ``ClearSolutions._replace_solution_region``)."""
    out: list[str] = []
    begin_line = None
    for n, line in enumerate(source.split("\n"), start=1):
        marker = MARKER.match(line)
        if marker is None:
            if BEGIN in line or END in line:
                raise SolutionMarkerError(f"{where}, line {n}: a solution marker must be a comment alone on its "
                                          f"line, such as '### {BEGIN}': {line.strip()!r}")
            if begin_line is None:
                out.append(line)
        elif marker["which"] == "BEGIN":
            if begin_line is not None:
                raise SolutionMarkerError(f"{where}, line {n}: '{BEGIN}' inside the region opened at line "
                                          f"{begin_line}, which has no '{END}' before it")
            begin_line = n
            out.extend(marker["indent"] + s for s in stub)
        else:
            if begin_line is None:
                raise SolutionMarkerError(f"{where}, line {n}: '{END}' without a '{BEGIN}' before it")
            begin_line = None
    if begin_line is not None:
        raise SolutionMarkerError(f"{where}, line {begin_line}: '{BEGIN}' without an '{END}' after it")
    return "\n".join(out)


def student_copy(nb, name: str = "notebook"):
    """A copy of notebook ``nb`` without its solutions, test-only cells and outputs; ``nb`` is left
    as it was. ``name`` names the notebook in errors."""
    nb = nbformat.from_dict(nb)  # a deep copy
    for i, cell in enumerate(nb.cells):
        where = f"{name}, cell {i} (id {cell.get('id')})"
        if LOOKS_LIKE_A_SOLUTION in cell.source and not is_solution(cell):
            raise ValueError(f"{where} reads like a solution but is not tagged {SOLUTION_TAG!r}")
        if not is_solution(cell) and not is_test_only(cell):
            cell.source = clear_solutions(cell.source, CODE_STUB if cell.cell_type == "code" else TEXT_STUB, where)
    nb.cells = [c for c in nb.cells if not is_solution(c) and not is_test_only(c)]
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


@dataclass
class Written:
    """What one run wrote, and what it left alone because it was there already."""
    written: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)


def _copy_figures(source: Path, out: Path, keep_existing: bool, report: Written) -> None:
    if not source.is_dir():
        return
    for path in sorted(source.rglob("*")):
        if not path.is_file() or path.name.startswith("."):
            continue
        target = out / path.relative_to(source.parent)
        if keep_existing and target.exists():
            report.kept.append(target)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        report.written.append(target)


def write_student_copies(out_dir: str | Path, notebooks: list[Path] | None = None,
                         keep_existing: bool = False) -> Written:
    """Write a student copy of each notebook, and the figures folder beside them, into ``out_dir``.

    With ``keep_existing`` a file already in ``out_dir`` is never touched: a learner's work stays.
    Every copy is made (and checked) before anything is written, so a bad marker writes nothing."""
    paths = notebooks or course_notebooks()
    copies = []
    for path in paths:
        copy = student_copy(nbformat.read(path, as_version=4), name=str(path))
        nbformat.validate(copy)
        copies.append((path, copy))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = Written()
    for path, copy in copies:
        target = out / path.name
        if keep_existing and target.exists():
            report.kept.append(target)
            continue
        nbformat.write(copy, target)
        report.written.append(target)
    _copy_figures(paths[0].parent / FIGURES if paths else NOTEBOOKS / FIGURES, out, keep_existing, report)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", nargs="?", default=str(ROOT / "build" / "student"))
    parser.add_argument("--keep-existing", action="store_true",
                        help="write only the notebooks missing from OUT_DIR; never overwrite one")
    args = parser.parse_args(argv)
    try:
        report = write_student_copies(args.out_dir, keep_existing=args.keep_existing)
    except SolutionMarkerError as error:
        print(f"student_copies.py: unmatched solution marker: {error}", file=sys.stderr)
        return 1
    except ValueError as error:
        print(f"student_copies.py: {error}", file=sys.stderr)
        return 1
    for p in report.written:
        print(f"wrote {p}")
    notebooks_kept = [p.name for p in report.kept if p.suffix == ".ipynb"]
    if notebooks_kept:
        print(f"kept {len(notebooks_kept)} notebook(s) already in {args.out_dir}, not overwritten (rename one "
              f"and run again for a fresh copy): {', '.join(notebooks_kept)}")
    if len(report.kept) > len(notebooks_kept):
        print(f"kept {len(report.kept) - len(notebooks_kept)} figure file(s) already in {Path(args.out_dir) / FIGURES}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
