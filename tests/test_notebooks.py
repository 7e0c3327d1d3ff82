"""The notebooks as papermill runs them: injected parameters reach the JSON a notebook writes,
and a parameter of the wrong type stops the notebook at the cell after the parameters."""

import json
import re
from pathlib import Path

import nbformat
import papermill
import pytest

from lthkit import kernels  # noqa: F401  (papermill's engine "lthkit": kernels on Unix sockets)

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
COURSE = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def test_the_course_has_its_notebooks_in_order():
    assert [p.name[:3] for p in COURSE] == ["00_", "01_", "02_", "03_", "04_", "05_", "06_", "07_", "08_", "09_", "10_", "11_", "12_"]


@pytest.mark.parametrize("path", COURSE, ids=lambda p: p.name)
def test_every_notebook_carries_the_outputs_of_a_real_run(path):
    """The committed notebooks are read on the web: each carries its outputs, CIFAR-10's included."""
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code), "run `make notebooks` to commit outputs from a real run"
    assert any("image/png" in o.get("data", {}) for c in code for o in c.outputs) or path.name.startswith("00")
    text = "\n".join(c.source for c in nb.cells).lower()
    assert "without outputs" not in text and "synthetic" not in text and "cannot download" not in text


@pytest.mark.parametrize("path", COURSE, ids=lambda p: p.name)
def test_each_notebook_has_goals_one_parameters_cell_exercises_and_solutions(path):
    nb = nbformat.read(path, as_version=4)
    assert "What you will learn here" in nb.cells[0].source and "**Run time**" in nb.cells[0].source
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    for name in ("budget", "seed", "device", "output_dir"):
        assert f"\n{name} = " in "\n" + tagged[0].source
    sources = "\n".join(c.source for c in nb.cells)
    assert "check(" in sources and "save_json(" in sources
    assert any("solution" in c.metadata.get("tags", []) for c in nb.cells)


@pytest.mark.parametrize("path", [p for p in COURSE if p.name >= "05"], ids=lambda p: p.name)
def test_the_core_path_of_a_lab_computes_for_at_most_ten_minutes_at_the_classroom_budget(path):
    """A 90-minute lab holds reading, exercises and computing: the cells outside the sections marked
    optional took at most 10 minutes in the committed run (papermill's durations, 2-core CPU), on the
    course CPU (a run on a slower host scaled by the two hosts' matrix-multiply rates, which errs long),
    and the first cell says what the last refresh measured."""
    from test_classroom_tools import load_tool

    refresh = load_tool("refresh_notebooks")
    nb = nbformat.read(path, as_version=4)
    core = refresh.core_path_seconds(nb)
    scaled = refresh.on_course_cpu(core, nb)
    assert 0 < scaled <= 600, (f"{path.name}: the core path computed for {core:.0f} s ({scaled:.0f} s on the course "
                               f"CPU); mark a section optional or trim it")
    if refresh.OPTIONAL.search("\n".join(c.source for c in nb.cells if c.cell_type == "markdown")):
        assert f"the core path, without the optional sections, {refresh._minutes(core)}." in nb.cells[0].source


def test_a_refresh_on_a_slower_host_is_scaled_to_the_course_cpu_by_its_anchor():
    from test_classroom_tools import load_tool

    refresh = load_tool("refresh_notebooks")
    nb = nbformat.v4.new_notebook()
    assert refresh.on_course_cpu(500.0, nb) == 500.0, "a refresh that recorded no host ran on the course CPU"
    nb.metadata["lthkit"] = {"last_refresh": {"matmul_gflops": refresh.COURSE_CPU_GFLOPS / 2}}
    assert refresh.on_course_cpu(900.0, nb) == pytest.approx(450.0)


def test_the_core_path_leaves_out_exactly_the_optional_sections():
    from test_classroom_tools import load_tool

    refresh = load_tool("refresh_notebooks")
    timed = lambda source, s: nbformat.v4.new_code_cell(source, metadata={"papermill": {"duration": s}})  # noqa: E731
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("## 1. Core"), timed("a", 100.0),
        nbformat.v4.new_markdown_cell("## 2. Optional: more"), timed("b", 50.0),
        nbformat.v4.new_markdown_cell("### still optional"), timed("c", 7.0),
        nbformat.v4.new_markdown_cell("## Save the results"), timed("d", 1.0)])
    assert refresh.core_path_seconds(nb) == 101.0


@pytest.mark.parametrize("path", COURSE, ids=lambda p: p.name)
def test_every_code_exercise_has_up_to_three_hints_folded_below_it(path):
    """The docstring states the contract; the recipe is in hints the learner opens one at a time, from a
    nudge to the near-answer, right below the function."""
    cells = nbformat.read(path, as_version=4).cells
    for i, cell in enumerate(cells):
        if cell.cell_type == "code" and "@course.yours(" in cell.source:
            below = cells[i + 1].source if i + 1 < len(cells) and cells[i + 1].cell_type == "markdown" else ""
            found = re.findall(r"<details><summary>Hint (\d)</summary>", below)
            assert found and found == [str(n) for n in range(1, len(found) + 1)] and len(found) <= 3, \
                f"{path.name}, cell {i}: hints 1 to 3, folded, in the markdown cell below the function"


def test_papermill_injects_parameters_and_the_notebook_saves_them(tmp_path):
    out = tmp_path / "outputs"
    papermill.execute_notebook(
        str(NOTEBOOKS / "01_dense_baseline.ipynb"), str(tmp_path / "01.ipynb"), cwd=str(NOTEBOOKS),
        parameters={"budget": "test", "seed": 3, "output_dir": str(out), "iterations": 60, "eval_every": 20},
        progress_bar=False, log_output=False, engine_name="lthkit",
    )
    saved = json.loads((out / "dense.json").read_text())
    assert saved["settings"]["seed"] == 3 and saved["config"]["seed"] == 3
    assert saved["config"]["iterations"] == 60 and saved["config"]["subset"] == 1000
    assert [p["iteration"] for p in saved["result"]["curve"]] == [0, 20, 40, 60]


@pytest.mark.parametrize("parameters,message", [
    ({"seed": "three"}, "seed must be a whole number, got 'three'"),
    ({"budget": "huge"}, "budget must be one of"),
])
def test_a_wrong_parameter_stops_the_notebook_at_once_with_a_message(tmp_path, parameters, message):
    with pytest.raises(papermill.PapermillExecutionError) as err:
        papermill.execute_notebook(str(NOTEBOOKS / "03_winning_tickets.ipynb"), str(tmp_path / "03.ipynb"),
                                   cwd=str(NOTEBOOKS), parameters=parameters, progress_bar=False, log_output=False,
                                   engine_name="lthkit")
    assert err.value.ename == "ParameterError" and message in err.value.evalue
    executed = nbformat.read(tmp_path / "03.ipynb", as_version=4)
    ran = [c for c in executed.cells if c.cell_type == "code" and c.get("execution_count")]
    assert len(ran) == 3  # the parameters, the injected parameters, and the check that stopped it


PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s*%")
def quoted_from_the_run(nb, allowed: dict[str, str]) -> list[tuple[int, str]]:
    """(cell, number) for each percentage of a markdown cell that the notebook's outputs print too."""
    printed = set()
    for cell in nb.cells:
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            printed |= set(PERCENT.findall("".join(output.get("text", "")) +
                                           "".join(output.get("data", {}).get("text/plain", ""))))
    return [(i, number) for i, cell in enumerate(nb.cells) if cell.cell_type == "markdown"
            for number in PERCENT.findall(cell.source) if number in printed and number not in allowed]


@pytest.mark.parametrize("path", COURSE, ids=lambda p: p.name[:2])
def test_no_markdown_quotes_a_number_its_run_printed(path):
    """The learner's copy has no outputs: what a run shows is printed by the run (lthkit.course.readouts),
    and markdown says what to look for. Only numbers the design fixes, listed with why, may appear in both."""
    from lthkit.course.published import DESIGN

    quoted = quoted_from_the_run(nbformat.read(path, as_version=4), DESIGN.get(path.name[:2], {}))
    assert not quoted, f"{path.name}: markdown quotes what its run printed (cell, number): {quoted}"


def test_the_quote_finder_catches_a_run_number_and_lets_a_design_number_pass():
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("the ticket reached 97.38% at 20% of the weights"),
        nbformat.v4.new_code_cell("print(...)", outputs=[nbformat.v4.new_output(
            "stream", name="stdout", text="ticket 97.38% at 20.0% (20% a round)")])])
    assert quoted_from_the_run(nb, {"20": "the rate"}) == [(0, "97.38")]
    assert quoted_from_the_run(nb, {}) == [(0, "97.38"), (0, "20")]
