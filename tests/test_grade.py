"""`lthkit grade`: each learner's notebooks run by papermill, verdicts tabled, the learners' folders untouched."""

import csv
import hashlib
import html
import re

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from lthkit.cli import main

SETTINGS = ('from lthkit import course\nfrom lthkit.course.exercises import check\n'
            'settings = course.notebook_settings("02", budget, seed=0, device="cpu", output_dir=output_dir)')


def learner_notebook(path, *cells: str):
    """A student copy in miniature: the parameters cell, the settings cell, then ``cells``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    nb = new_notebook(cells=[new_code_cell('budget = "classroom"\noutput_dir = "outputs/02"',
                                           metadata={"tags": ["parameters"]}),
                             *map(new_code_cell, [SETTINGS, *cells])])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def fingerprint(folder):
    """Every file and folder under ``folder`` with the SHA-256 of its bytes."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(folder.rglob("*"))}


@pytest.fixture
def collected(tmp_path):
    """alice answers one exercise of 02 right and leaves the other, and her 03 raises between its
    checks; bob answers 03's first exercise wrong, then hangs, and did not hand in 02."""
    folder = tmp_path / "collected"
    learner_notebook(folder / "alice" / "02_pruning.ipynb", 'answer = 0.512\ncheck("02.fc1-after-3-rounds", answer)',
                     'check("00.train-size", None)')
    learner_notebook(folder / "alice" / "03_tickets.ipynb", 'check("00.train-size", "55,000")',
                     'raise ValueError("alice\'s <mistake> & more")', 'check("03.best-round", 3)')
    learner_notebook(folder / "bob" / "03_tickets.ipynb", 'check("00.train-size", 60000)',
                     "import time\ntime.sleep(120)", 'check("03.best-round", 3)')
    return folder


def test_grading_runs_every_notebook_reports_failures_and_changes_nothing_in_the_learners_folders(
        collected, tmp_path, capsys):
    before = fingerprint(collected)
    out = tmp_path / "grades"
    assert main(["grade", str(collected), "--out", str(out), "--timeout", "8"]) == 0
    assert fingerprint(collected) == before, "grading wrote into the learners' folders"

    with open(out / "grades.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["learner", "notebook", "exercise", "status", "message"]
    status = {(r["learner"], r["notebook"], r["exercise"]): r["status"] for r in rows}
    assert status == {
        ("alice", "02_pruning.ipynb", "02.fc1-after-3-rounds"): "pass",
        ("alice", "02_pruning.ipynb", "00.train-size"): "not done",
        ("alice", "03_tickets.ipynb", "00.train-size"): "pass",
        ("alice", "03_tickets.ipynb", "03.best-round"): "failed",
        ("bob", "02_pruning.ipynb", "02.fc1-after-3-rounds"): "missing",
        ("bob", "02_pruning.ipynb", "00.train-size"): "missing",
        ("bob", "03_tickets.ipynb", "00.train-size"): "wrong",
        ("bob", "03_tickets.ipynb", "03.best-round"): "timed out",
    }
    message = {(r["learner"], r["exercise"], r["notebook"]): r["message"] for r in rows}
    assert message["alice", "03.best-round", "03_tickets.ipynb"] == "ValueError: alice's <mistake> & more"
    assert "timed out" in message["bob", "03.best-round", "03_tickets.ipynb"]
    assert "is all of MNIST's training images" in message["bob", "00.train-size", "03_tickets.ipynb"]

    page = (out / "grades.html").read_text(encoding="utf-8")
    header = re.findall(r"<th[^>]*>([^<]*)</th>", page.split("</tr>")[0])
    assert header == ["learner", "02.fc1-after-3-rounds", "00.train-size", "00.train-size", "03.best-round",
                      "passed"]
    rows_html = {re.search(r"<tr><th>(\w+)</th>", r)[1]: r for r in page.split("\n") if r.startswith("<tr><th>")
                 and "learner" not in r}
    marks = {who: re.findall(r'<td class="([^"]+)" title="[^"]*"[^>]*>([^<]*)</td>', row)
             for who, row in rows_html.items()}
    assert marks["alice"] == [("pass", "✓"), ("not-done", "—"), ("pass", "✓"), ("failed", "!")]
    assert marks["bob"] == [("missing", ""), ("missing", ""), ("wrong", "✗"), ("timed-out", "⌛")]
    assert "alice's <mistake>" not in page and html.escape("ValueError: alice's <mistake> & more") in page
    assert ">2 of 4</td>" in rows_html["alice"] and ">0 of 4</td>" in rows_html["bob"]

    printed = capsys.readouterr().out
    assert "alice: 2 pass, 1 not done, 1 failed, of 4 exercises" in printed
    assert "03_tickets.ipynb failed: ValueError" in printed and "03_tickets.ipynb timed out:" in printed

    assert main(["progress", str(out / "runs" / "alice" / "02_pruning")]) == 0
    executed = capsys.readouterr().out.split("notebook.ipynb\n")[1]
    assert [line.split() for line in executed.splitlines()] == [
        ["02.fc1-after-3-rounds", "pass"], ["00.train-size", "not", "done"],
        "1 pass, 1 not done, of 2 exercises".split()], "progress reads papermill's injected output_dir"


def test_grading_refuses_an_output_folder_inside_the_learners_folders(collected, capsys):
    before = fingerprint(collected)
    with pytest.raises(SystemExit) as exit_:
        main(["grade", str(collected), "--out", str(collected / "alice" / "grades")])
    assert exit_.value.code == 2 and "overlap" in capsys.readouterr().err
    assert fingerprint(collected) == before
