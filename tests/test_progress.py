"""A learner's progress: each check recorded in the notebook's output folder, and `lthkit progress` reading it."""

import json

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from lthkit import course
from lthkit.cli import main
from lthkit.course import progress
from lthkit.course.exercises import check
from lthkit.course.verdicts import Verdict


@pytest.fixture
def recording(tmp_path):
    """Verdicts recorded into tmp_path/outputs/02, as after notebook 02's settings cell ran in a kernel."""
    folder = tmp_path / "outputs" / "02"
    progress.record_into(folder)
    yield folder / progress.PROGRESS_FILE
    progress.record_into(None)


def test_a_rerun_replaces_the_exercises_verdict_and_keeps_the_others(recording, capsys):
    check("02.fc1-after-3-rounds", 0.5)
    check("00.train-size", 55000)
    first = json.loads(recording.read_text())
    assert first["02.fc1-after-3-rounds"]["status"] == "wrong" and not first["02.fc1-after-3-rounds"]["correct"]
    check("02.fc1-after-3-rounds", 0.512)
    again = json.loads(recording.read_text())
    assert set(again) == {"02.fc1-after-3-rounds", "00.train-size"}
    assert again["02.fc1-after-3-rounds"]["status"] == "pass" and again["02.fc1-after-3-rounds"]["correct"]
    assert again["00.train-size"] == first["00.train-size"]
    assert capsys.readouterr().out.count("✓") == 2, "check still prints every verdict"
    assert [p.name for p in recording.parent.iterdir()] == [progress.PROGRESS_FILE], "no temporary file left"


def test_an_unset_answer_or_an_unwritten_function_is_not_done(recording):
    check("00.train-size", None)
    assert json.loads(recording.read_text())["00.train-size"]["status"] == "not done"
    assert progress.status_of(Verdict(False, "not written yet: replace `raise NotImplementedError()`")) == "not done"
    assert progress.status_of(Verdict(False, "is what one round leaves")) == "wrong"


def test_a_folder_that_cannot_be_written_costs_one_warning_line_not_the_verdict(tmp_path, capsys):
    (tmp_path / "a-file").write_text("")
    progress.record_into(tmp_path / "a-file" / "outputs")
    try:
        check("00.train-size", 55000)
    finally:
        progress.record_into(None)
    printed = capsys.readouterr()
    assert printed.out.startswith("✓")
    assert len(printed.err.strip().splitlines()) == 1 and "not recorded" in printed.err


def test_outside_a_kernel_notebook_settings_records_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    course.notebook_settings("02", "test", seed=0, device="cpu", output_dir="outputs/02")
    check("00.train-size", 55000)
    assert "✓" in capsys.readouterr().out and not (tmp_path / "outputs").exists()


def learner_notebook(path, number, *checks):
    """A student copy in miniature: a parameters cell with output_dir, the settings cell, and one
    checker cell per exercise; a markdown cell mentioning check(...) is not an exercise."""
    cells = [new_code_cell(f'budget = "classroom"\noutput_dir = "outputs/{number}"', metadata={"tags": ["parameters"]}),
             new_code_cell(f'from lthkit import course\nsettings = course.notebook_settings("{number}", budget, '
                           f'seed=0, device="cpu", output_dir=output_dir)'),
             new_markdown_cell('Run `check("99.not-an-exercise", answer)` below.')]
    cells += [new_code_cell(f"answer = None\ncheck({name!r}, answer)") for name in checks]
    nbformat.write(new_notebook(cells=cells), path)
    return path


def test_progress_lists_every_exercise_of_each_notebook_with_its_status(tmp_path, capsys):
    learner_notebook(tmp_path / "02_pruning.ipynb", "02", "02.prune-layer", "02.fc1-after-3-rounds", "00.train-size")
    learner_notebook(tmp_path / "03_tickets.ipynb", "03", "03.best-round")
    (tmp_path / ".ipynb_checkpoints").mkdir()
    learner_notebook(tmp_path / ".ipynb_checkpoints" / "02_pruning-checkpoint.ipynb", "02", "02.old")
    progress.record_into(tmp_path / "outputs" / "02")
    try:
        check("02.fc1-after-3-rounds", 0.8)
        check("00.train-size", 55000)
    finally:
        progress.record_into(None)
    capsys.readouterr()
    assert main(["progress", str(tmp_path)]) == 0
    blocks = capsys.readouterr().out.strip().split("\n\n")
    assert [b.splitlines()[0] for b in blocks] == ["02_pruning.ipynb", "03_tickets.ipynb"]
    assert [line.split() for line in blocks[0].splitlines()[1:4]] == [
        ["02.prune-layer", "not", "done"], ["02.fc1-after-3-rounds", "wrong"], ["00.train-size", "pass"]]
    assert blocks[0].splitlines()[4].strip() == "1 pass, 1 wrong, 1 not done, of 3 exercises"
    assert blocks[1].splitlines()[1:] == ["  03.best-round  not done", "  1 not done, of 1 exercise"]
    assert "99.not-an-exercise" not in "\n".join(blocks) and "02.old" not in "\n".join(blocks)
