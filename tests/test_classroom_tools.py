"""The classroom tools: students' copies without solutions, the static site, the teacher's guide.

Each test reads whatever notebooks are in notebooks/, so a new notebook is covered at once."""

import hashlib
import html
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parent.parent
COURSE = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
GUIDE = REPO / "docs" / "teachers_guide.md"


def load_tool(name):
    spec = importlib.util.spec_from_file_location(name, REPO / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def is_solution(cell):
    return "solution" in cell.metadata.get("tags", [])


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
    assert "<details>" not in text and "Solution (click to reveal)" not in text
    for cell in solutions:
        body = cell.source.split("</summary>", 1)[-1].replace("</details>", "").strip()
        assert body not in text
    kept = [(c.cell_type, c.source, c.metadata.get("tags", [])) for c in original.cells if not is_solution(c)]
    assert [(c.cell_type, c.source, c.metadata.get("tags", [])) for c in copy.cells] == kept


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
    assert "live kernel" in index


# The teacher's guide


def exercise_names(path):
    return re.findall(r'check\("([^"]+)"', "\n".join(c.source for c in read(path).cells if c.cell_type == "code"))


def numbered_exercises(path):
    return [int(n) for c in read(path).cells if c.cell_type == "markdown"
            for n in re.findall(r"^\*\*(\d+)\.\*\*", c.source, flags=re.M)]


def entries(guide: str) -> dict[str, str]:
    """Answer entries of the guide: each `#### NN · exercise N ...` heading and the text under it."""
    parts = re.split(r"^#### ", guide, flags=re.M)[1:]
    return {p.splitlines()[0]: p.split("\n", 1)[1].split("\n#", 1)[0].strip() for p in parts}


@pytest.mark.parametrize("path", COURSE, ids=lambda p: p.name)
def test_the_guide_answers_every_exercise_of_every_notebook(path):
    answers = entries(GUIDE.read_text(encoding="utf-8"))
    number = path.name[:2]
    exercises = numbered_exercises(path)
    assert exercises == list(range(1, len(exercises) + 1)) and len(exercises) >= len(exercise_names(path))
    for n in exercises:
        heads = [h for h in answers if h.startswith(f"{number} · exercise {n} ") or h == f"{number} · exercise {n}"]
        assert len(heads) == 1, f"the guide has no answer to notebook {number}'s exercise {n}"
        assert len(answers[heads[0]]) > 40, f"the answer to {heads[0]} is empty"
    for name in exercise_names(path):
        assert any(f"`{name}`" in h for h in answers), f"the guide has no answer entry for check({name!r})"


def test_the_guide_covers_every_notebook_and_is_linked_from_the_readme():
    guide = GUIDE.read_text(encoding="utf-8")
    assert "docs/teachers_guide.md" in (REPO / "README.md").read_text(encoding="utf-8")
    for path in COURSE:
        assert path.name in guide
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", guide):
        if not re.match(r"[a-z]+:", target):
            assert (GUIDE.parent / target).exists(), f"the guide links to missing {target}"
