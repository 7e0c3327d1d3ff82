"""Build the course as static HTML, to be read without running it.

    .venv/bin/python tools/build_site.py [OUTDIR]      (default build/site; `make site`)

One page per notebook, from its committed outputs (nothing is executed), through nbconvert's
``HTMLExporter`` and its ``lab`` template, and an ``index.html`` listing the notebooks with
their learning goals and run times. Navigation (previous / index / next) is a markdown cell
put at the top and the bottom of a copy of each notebook before export: the simplest way to
get it, and it looks like the rest of the page. The index is a one-cell notebook exported the
same way, so every page shares one style.

Figures are embedded in the pages, so the folder can be copied anywhere and opened offline;
only MathJax and the saved state of the sliders load from a CDN. Sliders need a live kernel:
on a page they show the state they were saved in, and the notebooks draw the same views at
fixed values beside them. A notebook committed without outputs gets a note saying how to fill
them in.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
COURSE_TITLE = "Lottery tickets, by hand"
WIDGET = "application/vnd.jupyter.widget-view+json"


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


def has_widgets(nb) -> bool:
    return any(WIDGET in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def no_outputs_note(path: Path, nb) -> str:
    rerun = (f"`.venv/bin/papermill notebooks/{path.name} notebooks/{path.name} --cwd notebooks "
             f"-p budget classroom`")
    return f"**Committed without outputs**: run it to fill them in, {rerun}."


WIDGET_NOTE = ("The sliders on this page need a live kernel: here they show the state they were saved in. "
               "The figures beside them show the same views at fixed values.")


def nav(paths: list[Path], i: int) -> str:
    links = []
    if i > 0:
        links.append(f"[← {title(nbformat.read(paths[i - 1], as_version=4))}]({page_name(paths[i - 1])})")
    links.append("[index](index.html)")
    if i + 1 < len(paths):
        links.append(f"[{title(nbformat.read(paths[i + 1], as_version=4))} →]({page_name(paths[i + 1])})")
    return " · ".join(links)


def page(paths: list[Path], i: int):
    """A copy of notebook ``paths[i]`` with navigation (and notes) at its top and bottom."""
    nb = nbformat.read(paths[i], as_version=4)
    bar = nav(paths, i)
    top = [bar]
    if not has_outputs(nb):
        top.append("> " + no_outputs_note(paths[i], nb))
    if has_widgets(nb):
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
             "Sliders need a live kernel: on these pages they show their saved state only."]
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        entry = f"## [{title(nb)}]({page_name(path)})\n\n{goals(nb)}\n\n{run_time(nb)}"
        if not has_outputs(nb):
            entry += "\n\n> " + no_outputs_note(path, nb)
        parts.append(entry)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("\n\n".join(parts))])
    nb.metadata["title"] = COURSE_TITLE
    return nb


def build_site(out_dir: str | Path, notebooks: list[Path] | None = None) -> list[Path]:
    paths = notebooks or sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    exporter = HTMLExporter(template_name="lab")
    written = []
    for name, nb in [("index.html", index(paths))] + [(page_name(p), page(paths, i)) for i, p in enumerate(paths)]:
        body, _ = exporter.from_notebook_node(nb)
        (out / name).write_text(body, encoding="utf-8")
        written.append(out / name)
    return written


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "build" / "site"
    for p in build_site(out):
        print(p)
