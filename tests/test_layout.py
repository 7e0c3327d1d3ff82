"""lthkit's layout, read from its import graph: the core stands on its own.

The core (data, models, masks, rewinding, training, IMP, results, configuration) is what a
researcher reuses outside the course; it imports nothing from the course's helpers (notebook
settings, checkers, quizzes, figures, widgets, the doctor) and needs neither matplotlib nor
ipywidgets. No two modules import each other, even through an import inside a function.
"""

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "lthkit"
COURSE = {"course", "exercises", "code_exercises", "quizzes", "widgets", "plots", "doctor"}
ENTRY_POINTS = {"cli", "__init__"}


def modules() -> dict[str, set[str]]:
    """Each lthkit module and the lthkit modules it imports, anywhere in its code."""
    graph = {}
    for path in PACKAGE.glob("*.py"):
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lthkit"):
                parts = node.module.split(".")
                imported |= {parts[1]} if len(parts) > 1 else {alias.name for alias in node.names}
            elif isinstance(node, ast.Import):
                imported |= {a.name.split(".")[1] for a in node.names if a.name.startswith("lthkit.")}
        graph[path.stem] = imported - {path.stem}
    return graph


def core() -> set[str]:
    return set(modules()) - COURSE - ENTRY_POINTS


def test_the_core_imports_nothing_from_the_course_helpers():
    graph = modules()
    assert COURSE <= set(graph), "a course helper named here no longer exists: update COURSE"
    offenders = {m: sorted(graph[m] & COURSE) for m in core() if graph[m] & COURSE}
    assert offenders == {}


def test_no_two_modules_import_each_other_even_inside_a_function():
    graph = modules()
    seen, stack = set(), []

    def visit(m):
        if m in stack:
            raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(m):] + [m]))
        if m in seen or m not in graph:
            return
        stack.append(m)
        for n in sorted(graph[m]):
            if n != "__init__":
                visit(n)
        stack.pop()
        seen.add(m)

    for m in sorted(graph):
        if m != "__init__":
            visit(m)


def test_the_core_needs_neither_matplotlib_nor_ipywidgets():
    names = ", ".join(f"lthkit.{m}" for m in sorted(core()))
    code = ("import sys\n"
            "for blocked in ('matplotlib', 'ipywidgets'):\n    sys.modules[blocked] = None\n"
            f"import {names}\n"
            "print('ok')")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr[-2000:]


def test_the_checks_would_see_a_course_import_in_the_core(tmp_path, monkeypatch):
    """The graph reads imports inside functions too: the data -> fetch cycle was hidden in one."""
    (tmp_path / "masks.py").write_text("def f():\n    from lthkit.plots import use_style\n")
    (tmp_path / "plots.py").write_text("import lthkit.masks\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", tmp_path)
    assert modules() == {"masks": {"plots"}, "plots": {"masks"}}
