"""Build the course as static HTML, to be read without running it, online or not.

    .venv/bin/python tools/build_site.py [OUTDIR]      (default build/site; `make site`)

One page per notebook, from its committed outputs (nothing is executed), through nbconvert's
``HTMLExporter`` and its ``lab`` template, and an ``index.html`` listing the notebooks with
their learning goals and run times. Navigation (previous / index / next) is a markdown cell
put at the top and the bottom of a copy of each notebook before export: the simplest way to
get it, and it looks like the rest of the page. The index is a one-cell notebook exported the
same way, so every page shares one style. Cells tagged ``test-only`` are left out. Solutions are
folded away as in the notebook (``fold_solutions``); a code exercise shows its stub, as the
learner's copy does, with the solution folded below it.

The folder works offline and can be copied anywhere: nothing is fetched from the internet.
The ``lab`` template's CSS is inlined and figures are embedded (outputs as ``data:`` images,
pictures in markdown through ``embed_images``; ``notebooks/figures/`` is copied beside the pages
too). What that template would fetch is left out by a small template extending it
(``OFFLINE_TEMPLATE``): require.js and MathJax (``<script src>`` from cdnjs), the Jupyter widgets
renderer (``embed-amd.js``, a script added from unpkg at load time) and Mermaid (imported from
cdnjs when a page has a diagram). No markdown cell uses math; if one did, its TeX would stay
readable as plain text. The saved widget state is dropped, so no widget JavaScript is needed:
sliders need a live kernel, and in each one's place the page says so and points at the static
figure beside it, which the notebooks draw at fixed values; a progress bar's place says it moves
while the notebook runs. A notebook committed without outputs gets a note saying how to fill
them in.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import nbformat
from jinja2 import DictLoader
from nbconvert import HTMLExporter
from nbconvert.filters.markdown_mistune import markdown2html_mistune

sys.path.insert(0, str(Path(__file__).resolve().parent))
from student_copies import MARKER, clear_solutions  # noqa: E402  (a tool beside this one)

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
FIGURES = "figures"
COURSE_TITLE = "Lottery tickets, by hand"
WIDGET = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
TEST_ONLY_TAG = "test-only"

# The lab template, less everything it would fetch from the internet (see the docstring), and with
# the raw HTML cells this script writes itself (folded solutions) kept as they are: the lab
# template would pass them through bleach, which escapes <details>.
OFFLINE_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block rawcell scoped -%}
{%- if cell.metadata.get('raw_mimetype', '') == 'text/html' -%}{{ cell.source }}{%- endif -%}
{%- endblock rawcell -%}
"""


def exporter() -> HTMLExporter:
    return HTMLExporter(template_name="lab", template_file="offline.html.j2", embed_images=True,
                        extra_loaders=[DictLoader({"offline.html.j2": OFFLINE_TEMPLATE})])


def page_name(path: Path) -> str:
    return path.stem + ".html"


def title(nb) -> str:
    return nb.cells[0].source.splitlines()[0].lstrip("# ").strip()


def goals(nb) -> str:
    """The bullet list under "**What you will learn here**" in the first cell, as markdown."""
    lines = nb.cells[0].source.split("**What you will learn here**", 1)[-1].strip("\n").splitlines()
    block = []
    for line in lines:
        if not line.strip():
            break
        block.append(line)
    return "\n".join(block)


def run_time(nb) -> str:
    return next((line for line in nb.cells[0].source.splitlines() if line.startswith("**Run time**")), "")


def has_outputs(nb) -> bool:
    return any(c.get("outputs") for c in nb.cells if c.cell_type == "code")


def is_test_only(cell) -> bool:
    return TEST_ONLY_TAG in cell.metadata.get("tags", [])


def widget_outputs(nb):
    """(cell index, output) of every widget output of ``nb``."""
    return [(i, o) for i, c in enumerate(nb.cells) if c.cell_type == "code"
            for o in c.outputs if WIDGET in o.get("data", {})]


def widget_kind(nb, output) -> str:
    """"slider", "progress" or "widget": what a widget output is, from the saved state of its
    models (the output's model and its children), else from its text."""
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    names, todo, seen = [], [output["data"][WIDGET].get("model_id")], set()
    while todo:
        model_id = todo.pop()
        if model_id in seen or model_id not in state:
            continue
        seen.add(model_id)
        names.append(state[model_id].get("model_name", ""))
        children = state[model_id].get("state", {}).get("children", [])
        todo += [c.removeprefix("IPY_MODEL_") for c in children if isinstance(c, str)]
    text = "".join(output["data"].get("text/plain", ""))
    if any("Slider" in n for n in names) or (not names and "Slider(" in text):
        return "slider"
    if any("Progress" in n for n in names) or (not names and "%|" in text):
        return "progress"
    return "widget"


def has_sliders(nb) -> bool:
    return any(widget_kind(nb, o) == "slider" for _, o in widget_outputs(nb))


def has_figure(cell) -> bool:
    return cell.cell_type == "code" and any(
        k.startswith("image/") for o in cell.get("outputs", []) for k in o.get("data", {}))


def figure_beside(cells, i: int) -> str | None:
    """"below" or "above": where the code cell nearest to cell ``i`` (test-only cells aside) draws a
    figure; None if neither neighbour does."""
    for direction, step in (("below", 1), ("above", -1)):
        j = i + step
        while 0 <= j < len(cells) and (cells[j].cell_type != "code" or is_test_only(cells[j])):
            j += step
        if 0 <= j < len(cells) and has_figure(cells[j]):
            return direction
    return None


def sliders_without_figure(nb) -> list[int]:
    """Indices (among the cells that are not test-only) of slider cells with no figure beside them."""
    cells = [c for c in nb.cells if not is_test_only(c)]
    shown = nbformat.from_dict(nb)
    shown.cells = cells
    return sorted({i for i, o in widget_outputs(shown) if widget_kind(shown, o) == "slider"
                   and figure_beside(cells, i) is None})


def widget_note(kind: str, beside: str | None) -> str:
    if kind == "slider":
        if beside:
            return f"Interactive slider: needs a running notebook; the static figure {beside} shows the same views."
        return "Interactive slider: needs a running notebook."
    if kind == "progress":
        return "Progress bar: it moves while the notebook runs."
    return "Interactive widget: needs a running notebook."


def note_output(text: str):
    return nbformat.v4.new_output("display_data", data={
        "text/html": f'<p class="static-note"><em>{text}</em></p>', "text/plain": text})


def no_outputs_note(path: Path, nb) -> str:
    rerun = (f"`.venv/bin/papermill notebooks/{path.name} notebooks/{path.name} --cwd notebooks "
             f"-p budget classroom`")
    return f"**Committed without outputs**: run it to fill them in, {rerun}."


WIDGET_NOTE = ("The sliders on this page need a live kernel (a running notebook): here a note stands in "
               "each one's place, and the figure beside it shows the same views at fixed values.")


def nav(paths: list[Path], i: int) -> str:
    links = []
    if i > 0:
        links.append(f"[← {title(nbformat.read(paths[i - 1], as_version=4))}]({page_name(paths[i - 1])})")
    links.append("[index](index.html)")
    if i + 1 < len(paths):
        links.append(f"[{title(nbformat.read(paths[i + 1], as_version=4))} →]({page_name(paths[i + 1])})")
    return " · ".join(links)


FOLDED = re.compile(r"^\s*<details>\s*<summary>(?P<summary>.*?)</summary>(?P<body>.*)</details>\s*$", re.S)


def folded(summary: str, markdown: str):
    """A ``<details>`` block as a raw HTML cell: nbconvert's markdown renderer ends a ``<details>``
    at its first blank line, which would put every solution in plain sight on the page."""
    cell = nbformat.v4.new_raw_cell(
        f'<div class="jp-RenderedHTMLCommon jp-RenderedMarkdown jp-MarkdownOutput"><details><summary>{summary}'
        f"</summary>\n{markdown2html_mistune(markdown.strip())}\n</details></div>")
    cell.metadata["raw_mimetype"] = "text/html"
    return cell


def fold_solutions(cells) -> list:
    """Every solution folded away on the page as in the notebook: the ``<details>`` cells, and each
    code exercise shown as the learner meets it, the stub, with its solution folded below it."""
    out = []
    for cell in cells:
        match = FOLDED.match(cell.source) if cell.cell_type == "markdown" else None
        if match:
            out.append(folded(match["summary"], match["body"]))
        elif cell.cell_type == "code" and any(MARKER.match(line) for line in cell.source.splitlines()):
            solution = "\n".join(line for line in cell.source.splitlines() if not MARKER.match(line))
            stub = nbformat.from_dict(cell)
            stub.source = clear_solutions(cell.source)
            out += [stub, folded("Solution (click to reveal)", f"```python\n{solution}\n```")]
        else:
            out.append(cell)
    return out


def page(paths: list[Path], i: int):
    """A copy of notebook ``paths[i]`` as its page shows it: without test-only cells, each widget
    output replaced by a note, no saved widget state, and navigation (and notes) at top and bottom."""
    nb = nbformat.read(paths[i], as_version=4)
    nb.cells = fold_solutions([c for c in nb.cells if not is_test_only(c)])
    sliders = has_sliders(nb)
    for j, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            cell.outputs = [note_output(widget_note(widget_kind(nb, o), figure_beside(nb.cells, j)))
                            if WIDGET in o.get("data", {}) else o for o in cell.outputs]
    nb.metadata.pop("widgets", None)
    bar = nav(paths, i)
    top = [bar]
    if not has_outputs(nb):
        top.append("> " + no_outputs_note(paths[i], nb))
    if sliders:
        top.append("> " + WIDGET_NOTE)
    nb.cells.insert(0, nbformat.v4.new_markdown_cell("\n\n".join(top)))
    nb.cells.append(nbformat.v4.new_markdown_cell(bar))
    nb.metadata["title"] = title(nb)
    return nb


def index(paths: list[Path]):
    parts = [f"# {COURSE_TITLE}",
             "A hands-on course on the Lottery Ticket Hypothesis (Frankle & Carbin, ICLR 2019): the notebooks "
             "with the outputs of a real classroom run, to be read without running anything. To run them, see "
             "the repository's README; teachers, see `docs/teachers_guide.md` there.",
             "Sliders need a live kernel (a running notebook): on these pages a note stands in their place, "
             "beside a static figure of the same views."]
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        entry = f"## [{title(nb)}]({page_name(path)})\n\n{goals(nb)}\n\n{run_time(nb)}"
        if not has_outputs(nb):
            entry += "\n\n> " + no_outputs_note(path, nb)
        parts.append(entry)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("\n\n".join(parts))])
    nb.metadata["title"] = COURSE_TITLE
    return nb


def copy_figures(source: Path, out: Path) -> None:
    if not source.is_dir():
        return
    for path in sorted(source.rglob("*")):
        if path.is_file() and not path.name.startswith("."):
            target = out / path.relative_to(source.parent)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)


def build_site(out_dir: str | Path, notebooks: list[Path] | None = None) -> list[Path]:
    paths = notebooks or sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    folder = paths[0].parent if paths else NOTEBOOKS
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    html = exporter()
    written = []
    for name, nb in [("index.html", index(paths))] + [(page_name(p), page(paths, i)) for i, p in enumerate(paths)]:
        resources = {"metadata": {"name": Path(name).stem, "path": str(folder)}}
        body, _ = html.from_notebook_node(nb, resources=resources)
        (out / name).write_text(body, encoding="utf-8")
        written.append(out / name)
    copy_figures(folder / FIGURES, out)
    return written


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "build" / "site"
    for p in build_site(out):
        print(p)
    for p in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        for i in sliders_without_figure(nbformat.read(p, as_version=4)):
            print(f"warning: {p.name}, cell {i}: a slider with no static figure in the code cell beside it",
                  file=sys.stderr)
