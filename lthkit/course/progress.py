"""A learner's progress, kept where their notebook saves its results: no server, no account.

``notebook_settings`` tells this module the notebook's ``output_dir`` (in a Jupyter kernel only,
so that a script or a test calling it records nothing), and every ``check`` then records its
verdict in ``<output_dir>/progress.json``, one entry per exercise, replaced when the learner
checks again. ``lthkit progress`` reads these files beside the notebooks' own exercises, so an
exercise never attempted shows as not done; ``lthkit grade`` (``lthkit.course.grade``) reads the
files its own runs of the learners' notebooks leave.
"""

from __future__ import annotations

import ast
import json
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from lthkit.course.verdicts import Verdict

PROGRESS_FILE = "progress.json"
NOT_DONE_PREFIXES = ("not written yet", "not answered yet")
"""How the checkers begin a verdict on a stub or on ``answer = None``: the learner has not tried yet."""
STATUSES = ("pass", "wrong", "not done")

_CHECK_CALL = re.compile(r"""\bcheck\(\s*(["'])(?P<name>[^"'\n]+)\1""")
_recording_into: Path | None = None


def in_kernel() -> bool:
    """Whether this code runs in a Jupyter kernel (a notebook, papermill), not in a script or a test."""
    ipython = sys.modules.get("IPython")
    return ipython is not None and getattr(ipython.get_ipython(), "kernel", None) is not None


def notebook_started(output_dir: str | os.PathLike) -> None:
    """Record this kernel's verdicts into ``output_dir`` from now on (``notebook_settings`` calls it)."""
    record_into(output_dir if in_kernel() else None)


def record_into(folder: str | os.PathLike | None) -> None:
    """Record every verdict from now on into ``folder/progress.json``; None: record nothing.
    The folder is fixed as an absolute path now, so a later change of directory cannot move it."""
    global _recording_into
    _recording_into = None if folder is None else Path(folder).resolve()


def status_of(verdict: Verdict) -> str:
    """"pass", "wrong", or "not done" for the checkers' verdict on a stub or an unset answer."""
    if verdict.correct:
        return "pass"
    return "not done" if verdict.message.startswith(NOT_DONE_PREFIXES) else "wrong"


def record(exercise: str, verdict: Verdict) -> None:
    """Keep ``verdict`` on ``exercise`` in the progress file, if a notebook set one up.

    Never raises: a learner whose folder cannot be written still gets the verdict ``check``
    printed, with one line saying that it was not recorded."""
    if _recording_into is None:
        return
    path = _recording_into / PROGRESS_FILE
    try:
        verdicts = read_verdicts(path)
        verdicts[exercise] = {"exercise": exercise, "correct": verdict.correct, "message": verdict.message,
                              "status": status_of(verdict),
                              "time": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        _write_atomically(path, json.dumps(verdicts, indent=1, ensure_ascii=False) + "\n")
    except OSError as err:
        print(f"(your answer was checked but not recorded in {path}: {err.strerror or err})", file=sys.stderr)


def _write_atomically(path: Path, text: str) -> None:
    """Write through a temporary file in the same folder and ``os.replace``: a reader (``lthkit
    progress`` during the lab) sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def read_verdicts(path: str | os.PathLike) -> dict[str, dict]:
    """The recorded verdicts by exercise; {} for a missing file, or one that is not a progress
    file (the next ``check`` then starts it afresh)."""
    try:
        verdicts = json.loads(Path(path).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return verdicts if isinstance(verdicts, dict) else {}


# --- reading a folder of notebooks -----------------------------------------------------------------

def find_notebooks(folder: str | os.PathLike) -> list[Path]:
    """The notebooks in ``folder`` and below, sorted, leaving out hidden folders (``.ipynb_checkpoints``)."""
    folder = Path(folder)
    return sorted(p for p in folder.rglob("*.ipynb")
                  if not any(part.startswith(".") for part in p.relative_to(folder).parts))


def exercises_of(notebook) -> list[str]:
    """The exercises a notebook (an ``nbformat`` node) checks, in order: its ``check("NN.name"``
    calls, read from the code rather than from recordings, so that one never run is listed too."""
    names: dict[str, None] = {}
    for cell in notebook.cells:
        if cell.cell_type == "code":
            names.update((m["name"], None) for m in _CHECK_CALL.finditer(cell.source))
    return list(names)


def output_dir_of(path: str | os.PathLike, notebook) -> Path | None:
    """Where ``notebook``, read from ``path``, records its progress: the ``output_dir`` of its
    parameters cell, or of the cell papermill injected after it (both read by papermill's Python
    translator, as ``papermill --help-notebook`` does), relative to the notebook's folder as a
    kernel started there takes it; None if neither sets one."""
    from papermill.translators import PythonTranslator

    found = {}
    for tag in ("parameters", "injected-parameters"):
        cell = next((c for c in notebook.cells if tag in c.metadata.get("tags", [])), None)
        found.update({p.name: p.default for p in PythonTranslator.inspect(cell)} if cell is not None else {})
    try:
        value = ast.literal_eval(found.get("output_dir", "None"))
    except (ValueError, SyntaxError):
        return None
    return Path(path).parent / value if isinstance(value, str) else None


@dataclass(frozen=True)
class Entry:
    """One exercise of a notebook: its status (``STATUSES``, or what became of a graded run) and message."""

    exercise: str
    status: str
    message: str = ""


def notebook_progress(notebook, verdicts: dict[str, dict]) -> list[Entry]:
    """Each exercise of ``notebook`` with its recorded verdict, or "not done" if none is recorded."""
    entries = []
    for name in exercises_of(notebook):
        recorded = verdicts.get(name, {})
        entries.append(Entry(name, recorded.get("status", "not done"), recorded.get("message", "")))
    return entries


def totals(entries: list[Entry]) -> str:
    """``"1 pass, 1 wrong, 2 not done, of 4 exercises"``: each status that occurs, in ``STATUSES``' order first."""
    order = [*STATUSES, *sorted({e.status for e in entries} - set(STATUSES))]
    counts = [f"{sum(e.status == s for e in entries)} {s}" for s in order if any(e.status == s for e in entries)]
    return f"{', '.join(counts) or 'nothing'}, of {len(entries)} exercise{'s' * (len(entries) != 1)}"


def format_progress(folder: str | os.PathLike) -> str:
    """The table ``lthkit progress`` prints: per notebook of ``folder``, each exercise's status and the totals."""
    import nbformat

    folder = Path(folder)
    blocks = []
    for path in find_notebooks(folder):
        notebook = nbformat.read(path, as_version=4)
        where = output_dir_of(path, notebook)
        verdicts = read_verdicts(where / PROGRESS_FILE) if where is not None else {}
        entries = notebook_progress(notebook, verdicts)
        if not entries:
            continue
        width = max(len(e.exercise) for e in entries)
        lines = [str(path.relative_to(folder))]
        lines += [f"  {e.exercise:<{width}}  {e.status}" for e in entries]
        lines.append(f"  {totals(entries)}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) if blocks else f"no notebook with exercises in {folder}"
