"""Grade a class's notebooks: run each learner's copies and table every exercise's verdict.

``lthkit grade DIR`` takes the teacher's collected copies, one folder per learner. Each notebook
is copied into ``OUT/runs/<learner>/<notebook>/`` and run there by papermill in a process of its
own, as ``lthkit sweep`` runs a notebook (``lthkit.sweep._run_notebook``): the budget and an
``output_dir`` inside that folder as parameters, a time limit per cell. The verdicts its checkers
record there (``lthkit.course.progress``) are the grades. A notebook that raises or runs past the
limit is reported for the exercises it did not reach, with the error's last line, and grading
goes on. Nothing is written into DIR: the learners' work is read, never run in place.

What comes out: ``OUT/grades.csv`` (one row per learner and exercise) and ``OUT/grades.html``
(learners as rows, exercises as columns), a static page to open in any browser.
"""

from __future__ import annotations

import contextlib
import csv
import html
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import nbformat

from lthkit.course.progress import PROGRESS_FILE, Entry, find_notebooks, notebook_progress, read_verdicts, totals

DEFAULT_TIMEOUT_S = 600
FAILED, TIMED_OUT, MISSING = "failed", "timed out", "missing"
"""What became of an exercise a run did not reach, or of one in a notebook a learner did not hand in."""
CSV_FIELDS = ("learner", "notebook", "exercise", "status", "message")
MARKS = {"pass": ("✓", "#1a7f37", "#dafbe1"), "wrong": ("✗", "#cf222e", "#ffebe9"),
         "not done": ("—", "#57606a", "#f6f8fa"), FAILED: ("!", "#9a6700", "#fff8c5"),
         TIMED_OUT: ("⌛", "#9a6700", "#fff8c5"), MISSING: ("", "#57606a", "#ffffff")}
"""Per status: the mark in the HTML table, its colour and its cell's background."""


class GradeError(ValueError):
    """Grading that cannot start: no learners' folders, or an output folder inside them."""


@dataclass(frozen=True)
class Run:
    """One learner's notebook, run: ``outcome`` is "ok", ``FAILED`` or ``TIMED_OUT``, ``error`` the
    error's last line, ``entries`` every exercise of the notebook with its verdict."""

    learner: str
    notebook: str
    outcome: str
    error: str
    entries: list[Entry]


def learners(folder: Path) -> list[Path]:
    """The learners' folders in ``folder``, sorted by name, hidden ones left out."""
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def run_notebook(learner: str, notebook: str, source: Path, work: Path, *, budget: str, timeout: int) -> Run:
    """Run a copy of ``source``, ``learner``'s ``notebook``, in ``work`` (emptied first: an earlier
    grading leaves nothing behind), with papermill's output and log beside it, and read the verdicts
    its checkers recorded. The kernel computes on one thread, as a sweep's jobs do."""
    from lthkit.sweep import Job, _run_notebook

    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    copy = work / source.name
    shutil.copyfile(source, copy)
    log = work / "log.txt"
    with open(log, "w") as out, contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            _run_notebook(Job("notebook", (("budget", budget),), str(copy)), work, threads=1, cell_timeout=timeout)
            outcome, error = "ok", ""
        except RuntimeError:
            outcome, error = _what_went_wrong(work / "notebook.ipynb", log)
    verdicts = read_verdicts(work / "outputs" / PROGRESS_FILE)
    entries = notebook_progress(nbformat.read(copy, as_version=4), verdicts)
    if outcome != "ok":
        entries = [e if e.exercise in verdicts else Entry(e.exercise, outcome, error) for e in entries]
    return Run(learner, notebook, outcome, error, entries)


def _what_went_wrong(executed: Path, log: Path) -> tuple[str, str]:
    """``TIMED_OUT`` or ``FAILED``, and the error's last line: nbclient's timeout as papermill
    logged it, else the exception of the cell papermill marked as failed, else the log's last line."""
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    for line in lines:
        if line.startswith("nbclient.exceptions.CellTimeoutError:"):
            return TIMED_OUT, line.partition(": ")[2]
    with contextlib.suppress(OSError, ValueError):
        for cell in nbformat.read(executed, as_version=4).cells:
            if cell.metadata.get("papermill", {}).get("status") != "failed":
                continue
            for output in cell.outputs:
                if output.output_type == "error":
                    return FAILED, f"{output.ename}: {output.evalue}" if output.evalue else output.ename
    return FAILED, lines[-1] if lines else "papermill failed and logged nothing"


def grade(folder: str | os.PathLike, out: str | os.PathLike, *, budget: str = "test",
          timeout: int = DEFAULT_TIMEOUT_S, on_run=None) -> list[Run]:
    """Run every learner's notebooks in ``folder`` into ``out`` and write ``out/grades.csv`` and
    ``out/grades.html``; ``on_run(run)`` is called after each notebook (the command prints it).
    A notebook some learners lack is listed for the others' exercises as ``MISSING``."""
    folder, out = Path(folder).resolve(), Path(out).resolve()
    if not folder.is_dir():
        raise GradeError(f"no folder {folder}: give the folder of collected copies, one subfolder per learner")
    if out == folder or folder in out.parents or out in folder.parents:
        raise GradeError(f"the output folder {out} and the learners' folder {folder} overlap: grading never "
                         f"writes into the learners' folders, so give --out a folder beside them")
    found = learners(folder)
    if not found:
        raise GradeError(f"{folder} holds no learner's folder: put each learner's notebooks in a folder of their own")
    runs = []
    for learner in found:
        for path in find_notebooks(learner):
            name = path.relative_to(learner).as_posix()
            work = out / "runs" / learner.name / Path(name).with_suffix("")
            runs.append(run_notebook(learner.name, name, path, work, budget=budget, timeout=timeout))
            if on_run is not None:
                on_run(runs[-1])
    runs += _missing(runs, [p.name for p in found])
    write_csv(out / "grades.csv", runs)
    (out / "grades.html").write_text(grades_html(runs, budget), encoding="utf-8")
    return runs


def _missing(runs: list[Run], names: list[str]) -> list[Run]:
    """A ``MISSING`` run for each notebook another learner handed in and this one did not."""
    exercises = {r.notebook: [e.exercise for e in r.entries] for r in runs}
    handed_in = {(r.learner, r.notebook) for r in runs}
    return [Run(learner, notebook, MISSING, "", [Entry(x, MISSING, "not handed in") for x in its_exercises])
            for learner in names for notebook, its_exercises in sorted(exercises.items())
            if (learner, notebook) not in handed_in]


def write_csv(path: Path, runs: list[Run]) -> None:
    """One row per learner and exercise: ``CSV_FIELDS``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_FIELDS)
        for run in sorted(runs, key=lambda r: (r.learner, r.notebook)):
            writer.writerows((run.learner, run.notebook, e.exercise, e.status, e.message) for e in run.entries)


def columns(runs: list[Run]) -> list[tuple[str, str]]:
    """(notebook, exercise) for every exercise any learner's notebook has, by notebook, in the notebook's order."""
    seen: dict[tuple[str, str], None] = {}
    for run in sorted(runs, key=lambda r: r.notebook):
        seen.update(((run.notebook, e.exercise), None) for e in run.entries)
    return list(seen)


def grades_html(runs: list[Run], budget: str = "test") -> str:
    """A static page: a row per learner, a column per exercise, each cell the verdict's mark in its
    colour with the checker's message as its tooltip; a last column counts the passes."""
    e = html.escape
    cols = columns(runs)
    by_learner: dict[str, dict[tuple[str, str], Entry]] = {}
    for run in runs:
        by_learner.setdefault(run.learner, {}).update(((run.notebook, x.exercise), x) for x in run.entries)
    head = "".join(f'<th title="{e(nb)}">{e(x)}</th>' for nb, x in cols)
    rows = []
    for learner, cells in sorted(by_learner.items()):
        marks = "".join(_cell(cells.get(col, Entry(col[1], MISSING, "not in this learner's copy"))) for col in cols)
        passed = sum(x.status == "pass" for x in cells.values())
        rows.append(f"<tr><th>{e(learner)}</th>{marks}<td>{passed} of {len(cols)}</td></tr>")
    legend = " ".join(f'<span style="color:{c}">{m or "(blank)"}</span> {e(s)}' for s, (m, c, _) in MARKS.items())
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>Grades</title>\n<style>'
            f"body{{font-family:sans-serif}} table{{border-collapse:collapse}} "
            f"th,td{{border:1px solid #d0d7de;padding:4px 8px;text-align:center}} th{{font-weight:600}}"
            f"</style></head><body>\n<h1>Grades</h1>\n<p>Every notebook run at the {e(budget)} budget. {legend}. "
            f"Hover over a mark for the checker's message."
            f"</p>\n<table>\n<tr><th>learner</th>{head}<th>passed</th></tr>\n" + "\n".join(rows) +
            "\n</table>\n</body></html>\n")


def _cell(entry: Entry) -> str:
    mark, colour, background = MARKS.get(entry.status, ("?", "#57606a", "#ffffff"))
    tip = html.escape(f"{entry.status}: {entry.message}" if entry.message else entry.status)
    return (f'<td class="{html.escape(entry.status.replace(" ", "-"))}" title="{tip}" '
            f'style="color:{colour};background:{background}">{mark}</td>')


def summary(runs: list[Run]) -> str:
    """Per learner, the totals over their exercises, and each notebook that failed or timed out."""
    lines = []
    for learner in sorted({r.learner for r in runs}):
        theirs = [r for r in runs if r.learner == learner]
        lines.append(f"{learner}: {totals([x for r in theirs for x in r.entries])}")
        lines += [f"  {r.notebook} {r.outcome}: {r.error}" for r in theirs if r.outcome in (FAILED, TIMED_OUT)]
    return "\n".join(lines)
