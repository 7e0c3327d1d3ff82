"""The classroom tools: students' copies without solutions, the static site, the teacher's guide.

Each test reads whatever notebooks are in notebooks/, so a new notebook is covered at once; small
notebooks built here test what the course's notebooks do not (yet) contain."""

import hashlib
import html
import importlib.util
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parent.parent
COURSE = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
GUIDE = REPO / "docs" / "teachers_guide.md"


def load_tool(name):
    spec = importlib.util.spec_from_file_location(name, REPO / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def is_solution(cell):
    return "solution" in cell.metadata.get("tags", [])


def is_test_only(cell):
    return "test-only" in cell.metadata.get("tags", [])


def has_markers(cell):
    return "BEGIN SOLUTION" in cell.source


def python_of(source):
    """A code cell's source as plain Python: IPython's own transformer turns magics into calls."""
    from IPython.core.inputtransformer2 import TransformerManager
    return TransformerManager().transform_cell(source)


def notebook(*cells, title="# 99 · A test notebook"):
    """A small course-like notebook: a first cell with a title and goals, then ``cells``."""
    first = nbformat.v4.new_markdown_cell(f"{title}\n\n**What you will learn here**\n- something\n\n**Run time**: 1 s")
    return nbformat.v4.new_notebook(cells=[first, *cells])


def tagged(cell, *tags):
    cell.metadata["tags"] = list(tags)
    return cell


def read(path):
    return nbformat.read(path, as_version=4)


def fingerprint():
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in COURSE}


@pytest.fixture(scope="module")
def students(tmp_path_factory):
    out = tmp_path_factory.mktemp("student")
    before = fingerprint()
    subprocess.run([sys.executable, str(REPO / "tools" / "student_copies.py"), str(out)], check=True,
                   capture_output=True)
    return out, before


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, str(REPO / "tools" / "build_site.py"), str(out)], check=True, capture_output=True)
    return out


# Students' copies


def test_there_is_a_student_copy_of_every_notebook_and_the_originals_are_unchanged(students):
    out, before = students
    assert sorted(p.name for p in out.glob("*.ipynb")) == [p.name for p in COURSE]
    assert fingerprint() == before


@pytest.mark.parametrize("path", COURSE, ids=lambda p: p.name)
def test_a_student_copy_has_no_solution_and_keeps_every_other_cell_in_order(students, path):
    out, _ = students
    nbformat.validate(nbformat.read(out / path.name, as_version=nbformat.NO_CONVERT))
    original, copy = read(path), read(out / path.name)
    assert copy.nbformat == 4
    solutions = [c for c in original.cells if is_solution(c)]
    assert solutions, "every notebook has solutions to remove"
    assert not any(is_solution(c) for c in copy.cells)
    text = "\n".join(c.source for c in copy.cells)
    assert "<summary>Solution" not in text and "Solution (click to reveal)" not in text  # hints stay folded
    for cell in solutions:
        body = cell.source.split("</summary>", 1)[-1].replace("</details>", "").strip()
        assert body not in text
    kept = [c for c in original.cells if not is_solution(c) and not is_test_only(c)]
    assert [(c.cell_type, c.metadata.get("tags", [])) for c in copy.cells] == \
        [(c.cell_type, c.metadata.get("tags", [])) for c in kept]
    for before, after in zip(kept, copy.cells):
        if has_markers(before):
            assert "raise NotImplementedError()" in after.source
        else:
            assert after.source == before.source


@pytest.mark.parametrize("path", COURSE, ids=lambda p: p.name)
def test_a_student_copy_has_no_test_only_cell_no_solution_region_and_every_code_cell_compiles(students, path):
    out, _ = students
    original, copy = read(path), read(out / path.name)
    assert not any(is_test_only(c) for c in copy.cells)
    for cell in copy.cells:
        assert "BEGIN SOLUTION" not in cell.source and "END SOLUTION" not in cell.source
    for i, cell in enumerate(c for c in copy.cells if c.cell_type == "code"):
        compile(python_of(cell.source), f"{path.name}, code cell {i}", "exec")
    for before in (c for c in original.cells if c.cell_type == "code" and has_markers(c)):
        after = next(c for c in copy.cells if c.get("id") == before.get("id"))
        for indent in re.findall(r"^([ \t]*)#+ *BEGIN SOLUTION", before.source, flags=re.M):
            assert f"{indent}# YOUR CODE HERE\n{indent}raise NotImplementedError()" in after.source


def test_the_course_has_test_only_cells_to_leave_out():
    assert any(is_test_only(c) for path in COURSE for c in read(path).cells)


def test_the_figures_folder_is_copied_beside_the_student_copies(students):
    out, _ = students
    for figure in (REPO / "notebooks" / "figures").rglob("*"):
        if figure.is_file() and not figure.name.startswith("."):
            copied = out / figure.relative_to(REPO / "notebooks")
            assert copied.read_bytes() == figure.read_bytes()


def test_a_student_copy_finds_the_data_and_the_reference_runs_from_another_folder(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "LTHKIT_DATA"}
    found = subprocess.run(
        [sys.executable, "-c", "from lthkit.data import data_root; from lthkit.course import REFERENCE_DIR; "
                               "print(data_root().resolve()); print(REFERENCE_DIR.resolve())"],
        cwd=tmp_path, env=env, check=True, capture_output=True, text=True).stdout.split("\n")
    assert found[:2] == [str((REPO / "data").resolve()), str((REPO / "notebooks" / "reference").resolve())]


EXERCISE = """import numpy as np


def prune_layer(weights, mask, rate):
    \"\"\"Prune a fraction ``rate`` of the surviving weights.\"\"\"
    ### BEGIN SOLUTION
    alive = np.abs(weights[mask])
    threshold = np.quantile(alive, rate)
    return mask & (np.abs(weights) > threshold)
    ### END SOLUTION


class Rule:
    def rewind(self, state):
        for name in state:
            ### BEGIN SOLUTION
            state[name] = self.initial[name]
            ### END SOLUTION
        return state
"""

STUDENT = """import numpy as np


def prune_layer(weights, mask, rate):
    \"\"\"Prune a fraction ``rate`` of the surviving weights.\"\"\"
    # YOUR CODE HERE
    raise NotImplementedError()


class Rule:
    def rewind(self, state):
        for name in state:
            # YOUR CODE HERE
            raise NotImplementedError()
        return state
"""


def test_solution_regions_become_nbgraders_stub_at_their_indentation_and_test_only_cells_go():
    tools = load_tool("student_copies")
    nb = notebook(
        nbformat.v4.new_code_cell(EXERCISE),
        tagged(nbformat.v4.new_markdown_cell("Moving the slider from code:"), "test-only"),
        tagged(nbformat.v4.new_code_cell("explorer.slider.value = 90"), "test-only"),
        nbformat.v4.new_code_cell("%matplotlib inline\nanswer = None"),
    )
    copy = tools.student_copy(nb)
    assert [c.source for c in copy.cells[1:]] == [STUDENT, "%matplotlib inline\nanswer = None"]
    for cell in copy.cells[1:]:
        compile(python_of(cell.source), "cell", "exec")
    assert nb.cells[1].source == EXERCISE and len(nb.cells) == 5  # the notebook given is left alone


@pytest.mark.parametrize("source, where", [
    ("def f():\n    ### BEGIN SOLUTION\n    return 1\n", "line 2: 'BEGIN SOLUTION' without an 'END SOLUTION'"),
    ("def f():\n    return 1\n    ### END SOLUTION\n", "line 3: 'END SOLUTION' without a 'BEGIN SOLUTION'"),
    ("### BEGIN SOLUTION\nx = 1\n### BEGIN SOLUTION\n### END SOLUTION\n", "line 3: 'BEGIN SOLUTION' inside"),
    ("x = 1  ### BEGIN SOLUTION\n### END SOLUTION\n", "line 1: a solution marker must be a comment alone"),
], ids=["begin-alone", "end-alone", "nested", "not-alone"])
def test_an_unmatched_solution_marker_stops_the_script_naming_notebook_and_cell(tmp_path, source, where):
    tools = load_tool("student_copies")
    path = tmp_path / "notebooks" / "07_broken.ipynb"
    path.parent.mkdir()
    nbformat.write(notebook(nbformat.v4.new_code_cell("x = 0"), nbformat.v4.new_code_cell(source)), path)
    with pytest.raises(tools.SolutionMarkerError, match=re.escape("07_broken.ipynb, cell 2") + ".*" + re.escape(where)):
        tools.write_student_copies(tmp_path / "out", [path])
    assert not (tmp_path / "out" / path.name).exists()


def test_make_lab_never_overwrites_a_learners_copy_and_make_student_does(tmp_path):
    tools = load_tool("student_copies")
    folder = tmp_path / "notebooks"
    (folder / "figures").mkdir(parents=True)
    (folder / "figures" / "ticket.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    (folder / "figures" / ".gitkeep").write_text("")
    first = folder / "01_first.ipynb"
    nbformat.write(notebook(nbformat.v4.new_code_cell(EXERCISE)), first)
    out = tmp_path / "student"

    report = tools.write_student_copies(out, [first], keep_existing=True)
    assert sorted(report.written) == [out / first.name, out / "figures" / "ticket.svg"] and report.kept == []
    assert not (out / "figures" / ".gitkeep").exists()

    mine = read(out / first.name)
    mine.cells[1].source = STUDENT.replace("raise NotImplementedError()", "return mask", 1)
    nbformat.write(mine, out / first.name)
    (out / "figures" / "ticket.svg").write_text("my notes on the figure")
    learner = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}

    second = folder / "02_second.ipynb"
    nbformat.write(notebook(nbformat.v4.new_code_cell("answer = None"), title="# 02 · Second"), second)
    report = tools.write_student_copies(out, [first, second], keep_existing=True)
    assert report.written == [out / second.name]
    assert sorted(report.kept) == [out / first.name, out / "figures" / "ticket.svg"]
    assert all(p.read_bytes() == learner[p] for p in learner), "a learner's file was overwritten"
    assert read(out / second.name).cells[1].source == "answer = None"

    tools.write_student_copies(out, [first, second])  # the teacher's release rewrites
    assert read(out / first.name).cells[1].source == STUDENT
    assert (out / "figures" / "ticket.svg").read_text().startswith("<svg")


def test_make_lab_writes_the_learners_copy_without_overwriting_and_opens_it():
    plan = subprocess.run(["make", "-n", "lab"], cwd=REPO, check=True, capture_output=True, text=True).stdout
    assert "tools/student_copies.py --keep-existing student" in plan
    assert re.search(r"jupyter lab student/?$", plan, flags=re.M)
    assert "learner's copy in student/" in plan and "make lab-teacher" in plan
    teacher = subprocess.run(["make", "-n", "lab-teacher"], cwd=REPO, check=True, capture_output=True, text=True).stdout
    assert re.search(r"jupyter lab notebooks/?$", teacher, flags=re.M) and "make lab." in teacher


@pytest.mark.parametrize("path", COURSE, ids=lambda p: p.name)
def test_a_student_copy_keeps_the_parameters_and_checkers_and_starts_with_no_outputs(students, path):
    out, _ = students
    copy = read(out / path.name)
    parameters = [c for c in copy.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(parameters) == 1
    assert parameters[0].source == next(c for c in read(path).cells if "parameters" in c.metadata.get("tags", [])).source
    code = [c for c in copy.cells if c.cell_type == "code"]
    assert sum('check("' in c.source for c in code) == sum('check("' in c.source for c in read(path).cells)
    assert all(c.outputs == [] and c.execution_count is None for c in code)
    assert "widgets" not in copy.metadata


def test_a_solution_without_its_tag_stops_the_script():
    tools = load_tool("student_copies")
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("answer = None"),
        nbformat.v4.new_markdown_cell("<details><summary>Solution (click to reveal)</summary>\n\n42\n\n</details>"),
    ])
    with pytest.raises(ValueError, match="not tagged 'solution'"):
        tools.student_copy(nb)
    nb.cells[1].metadata["tags"] = ["solution"]
    assert [c.source for c in tools.student_copy(nb).cells] == ["answer = None"]
    assert len(nb.cells) == 2  # the notebook given is left alone


# The static site


def links(page: Path) -> list[str]:
    return [html.unescape(h) for h in re.findall(r'<a\s[^>]*href="([^"]+)"', page.read_text(encoding="utf-8"))]


def local(hrefs):
    return [h for h in hrefs if not re.match(r"[a-z]+:|#", h)]


def test_the_site_has_an_index_and_a_page_per_notebook_and_every_link_resolves(site):
    pages = {p.name for p in site.glob("*.html")}
    assert pages == {"index.html"} | {p.stem + ".html" for p in COURSE}
    assert local(links(site / "index.html")) == [p.stem + ".html" for p in COURSE]
    for page in site.glob("*.html"):
        for href in local(links(page)):
            assert (site / href.split("#")[0]).is_file(), f"{page.name} links to missing {href}"
        for src in re.findall(r'<img[^>]*src="([^"]+)"', page.read_text(encoding="utf-8")):
            assert src.startswith("data:image/"), f"{page.name}: figure not embedded: {src[:60]}"


@pytest.mark.parametrize("i", range(len(COURSE)), ids=[p.name for p in COURSE])
def test_each_page_has_previous_index_next_at_its_top_and_bottom(site, i):
    expected = ([COURSE[i - 1].stem + ".html"] if i > 0 else []) + ["index.html"] + \
               ([COURSE[i + 1].stem + ".html"] if i + 1 < len(COURSE) else [])
    hrefs = [h for h in local(links(site / (COURSE[i].stem + ".html"))) if h.endswith(".html")]
    assert hrefs[:len(expected)] == expected and hrefs[-len(expected):] == expected


def test_pages_carry_the_committed_outputs(site):
    for path in COURSE:
        nb = read(path)
        figures = sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)
        page = (site / (path.stem + ".html")).read_text(encoding="utf-8")
        assert page.count('src="data:image/png;base64,') >= figures
    winning = (site / "03_winning_tickets.html").read_text(encoding="utf-8")
    assert 'src="data:image/png;base64,' in winning and "ticket acc" in winning


def test_the_index_gives_goals_and_run_times_and_says_which_notebooks_need_running(site):
    index = html.unescape(re.sub(r"<[^>]+>", "", (site / "index.html").read_text(encoding="utf-8")))
    tools = load_tool("build_site")
    for path in COURSE:
        nb = read(path)
        assert tools.title(nb) in index
        first_goal = tools.goals(nb).splitlines()[0].lstrip("- ")
        assert re.sub(r"[*`]", "", first_goal) in index
        if not tools.has_outputs(nb):
            assert "Committed without outputs" in html.unescape(
                re.sub(r"<[^>]+>", "", (site / (path.stem + ".html")).read_text(encoding="utf-8")))
    needs_running = [p for p in COURSE if not tools.has_outputs(read(p))]
    assert index.count("Committed without outputs") == len(needs_running)
    assert "live kernel" in index and "saved state" not in index


class Fetches(HTMLParser):
    """What a page loads by itself: the ``src`` of its scripts and the ``href`` of its links (not ``<a>``)."""

    def __init__(self):
        super().__init__()
        self.urls, self.script_types = [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script":
            self.urls.append(attrs.get("src") or "")
            self.script_types.append(attrs.get("type") or "")
        if tag == "link":
            self.urls.append(attrs.get("href") or "")


def fetches(page: Path) -> Fetches:
    parser = Fetches()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def assert_offline(page: Path):
    parsed, text = fetches(page), page.read_text(encoding="utf-8")
    online = [u for u in parsed.urls if re.match(r"(https?:)?//", u.strip(), flags=re.I)]
    assert not online, f"{page.name} fetches {online}"
    assert not any("widget" in t for t in parsed.script_types), f"{page.name} carries widget state or views"
    for mark in ("application/vnd.jupyter.widget-state+json", "application/vnd.jupyter.widget-view+json",
                 "unpkg.com", "cdnjs.cloudflare.com", "cdn.jsdelivr.net", "embed-amd.js", "require.min.js"):
        assert mark not in text, f"{page.name} still holds {mark!r}"


def test_every_page_of_the_site_works_offline_and_holds_no_widget_state(site):
    for page in site.glob("*.html"):
        assert_offline(page)


def slider_outputs(nb):
    return sum(1 for c in nb.cells if c.cell_type == "code" for o in c.outputs
               if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
               and "Slider(" in "".join(o["data"].get("text/plain", "")))


@pytest.mark.parametrize("path", COURSE, ids=lambda p: p.name)
def test_each_slider_has_a_note_in_its_place_and_a_static_figure_beside_it(site, path):
    tools = load_tool("build_site")
    nb = read(path)
    page = html.unescape(re.sub(r"<[^>]+>", "", (site / (path.stem + ".html")).read_text(encoding="utf-8")))
    notes = re.findall(r"Interactive slider: needs a running notebook; the static figure (?:below|above) shows "
                       r"the same views\.", page)
    assert len(notes) == slider_outputs(nb)
    assert tools.sliders_without_figure(nb) == [], f"{path.name}: a slider without a static figure beside it"
    assert "Interactive slider: needs a running notebook." not in page


@pytest.mark.parametrize("path", COURSE, ids=lambda p: p.name)
def test_the_site_leaves_out_test_only_cells(site, path):
    page = html.unescape(re.sub(r"<[^>]+>", "", (site / (path.stem + ".html")).read_text(encoding="utf-8")))
    for cell in read(path).cells:
        if is_test_only(cell):
            assert cell.source.splitlines()[0] not in page


def test_a_page_with_a_slider_a_progress_bar_and_a_picture_builds_offline(tmp_path):
    tools = load_tool("build_site")
    folder = tmp_path / "notebooks"
    (folder / "figures").mkdir(parents=True)
    svg = "<svg xmlns='http://www.w3.org/2000/svg' width='4' height='4'><rect width='4' height='4'/></svg>"
    (folder / "figures" / "ticket.svg").write_text(svg)
    state = {"state": {
        "s1": {"model_name": "VBoxModel", "state": {"children": ["IPY_MODEL_s2"]}},
        "s2": {"model_name": "IntSliderModel", "state": {}},
        "p1": {"model_name": "HBoxModel", "state": {"children": ["IPY_MODEL_p2"]}},
        "p2": {"model_name": "FloatProgressModel", "state": {}}}, "version_major": 2, "version_minor": 0}

    def widget(model_id, text):
        return nbformat.v4.new_output("display_data", data={
            "application/vnd.jupyter.widget-view+json": {"model_id": model_id, "version_major": 2, "version_minor": 0},
            "text/plain": text})

    png = nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"})
    train, slider, figure = (nbformat.v4.new_code_cell(s) for s in ("run = train()", "explorer", "plot()"))
    train.outputs = [widget("p1", "dense:   0%|          | 0/9170")]
    slider.outputs = [widget("s1", "VBox(children=(IntSlider(value=0)))")]
    figure.outputs = [png]
    nb = notebook(nbformat.v4.new_markdown_cell("The ticket: ![a ticket](figures/ticket.svg)"), train, slider,
                  tagged(nbformat.v4.new_code_cell("explorer.slider.value = 90"), "test-only"), figure)
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": state}
    path = folder / "01_widgets.ipynb"
    nbformat.write(nb, path)

    tools.build_site(tmp_path / "site", [path])
    page = tmp_path / "site" / "01_widgets.html"
    assert_offline(page)
    text = html.unescape(page.read_text(encoding="utf-8"))
    assert "Interactive slider: needs a running notebook; the static figure below shows the same views." in text
    assert "Progress bar: it moves while the notebook runs." in text
    assert "IntSlider" not in text and "explorer.slider.value" not in text
    assert 'src="data:image/svg+xml;base64,' in text
    assert (tmp_path / "site" / "figures" / "ticket.svg").read_text() == svg
    assert tools.sliders_without_figure(nb) == []
    nb.cells.remove(figure)
    assert tools.sliders_without_figure(nb) == [3]


# The teacher's guide


def exercise_names(path):
    return re.findall(r'check\("([^"]+)"', "\n".join(c.source for c in read(path).cells if c.cell_type == "code"))


def numbered_exercises(path):
    """The exercises' numbers, "**3.**" or "**Exercise 1 (code): ...**", the quiz's questions left out."""
    return [int(n) for c in read(path).cells if c.cell_type == "markdown" and not c.source.startswith("## Quiz")
            for n in re.findall(r"^\*\*(?:Exercise )?(\d+)(?:\.\*\*| \(code\))", c.source, flags=re.M)]


def entries(guide: str) -> dict[str, str]:
    """Answer entries of the guide: each `#### NN · exercise N ...` heading and the text under it."""
    parts = re.split(r"^#### ", guide, flags=re.M)[1:]
    return {p.splitlines()[0]: p.split("\n", 1)[1].split("\n#", 1)[0].strip() for p in parts}


@pytest.mark.parametrize("path", COURSE, ids=lambda p: p.name)
def test_the_guide_answers_every_exercise_of_every_notebook(path):
    answers = entries(GUIDE.read_text(encoding="utf-8"))
    number = path.name[:2]
    exercises = numbered_exercises(path)
    checked = [name for name in exercise_names(path) if not name.endswith(".quiz")]
    assert exercises == list(range(1, len(exercises) + 1)) and len(exercises) >= len(checked)
    for n in exercises:
        heads = [h for h in answers if h.startswith(f"{number} · exercise {n} ") or h == f"{number} · exercise {n}"]
        assert len(heads) == 1, f"the guide has no answer to notebook {number}'s exercise {n}"
        assert len(answers[heads[0]]) > 40, f"the answer to {heads[0]} is empty"
    for name in exercise_names(path):
        assert any(f"`{name}`" in h for h in answers), f"the guide has no answer entry for check({name!r})"
    assert f"{number} · quiz · `{number}.quiz`" in answers, f"the guide has no quiz answers for notebook {number}"


def test_the_guide_covers_every_notebook_and_is_linked_from_the_readme():
    guide = GUIDE.read_text(encoding="utf-8")
    assert "docs/teachers_guide.md" in (REPO / "README.md").read_text(encoding="utf-8")
    for path in COURSE:
        assert path.name in guide
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", guide):
        if not re.match(r"[a-z]+:", target):
            assert (GUIDE.parent / target).exists(), f"the guide links to missing {target}"


def test_the_site_shows_each_code_exercise_as_a_stub_with_its_solution_folded_away(site):
    page = (site / "03_winning_tickets.html").read_text()
    assert "BEGIN SOLUTION" not in page and "NotImplementedError" in page
    folded = [re.sub(r"<[^>]+>", "", part.split("</details>")[0]) for part in page.split("Solution (click to reveal)")[1:]]
    assert any("model.load_state_dict(initial)" in html.unescape(part) for part in folded)


def test_every_solution_on_the_site_is_folded_away(site):
    """nbconvert's markdown renderer would close a <details> at its first blank line and show the answer."""
    page = (site / "03_winning_tickets.html").read_text()
    blocks = re.findall(r"<details>(.*?)</details>", page, flags=re.S)
    assert len(blocks) >= 4
    assert all(len(re.sub(r"<[^>]+>|\s", "", b)) > 60 for b in blocks)  # each holds its solution
    outside = re.sub(r"<details>.*?</details>", "", page, flags=re.S)
    assert "28,823 of 266,200" not in outside and "28,823 of 266,200" in page
