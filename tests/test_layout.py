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
COURSE = "course"  # the package lthkit.course and everything in it
COURSE_MODULES = {"course", "course.exercises", "course.code_exercises", "course.quizzes", "course.verdicts", "course.fallback",
                  "course.widgets", "course.plots", "course.doctor", "course.shipping", "course.progress", "course.grade", "course.readouts", "course.published"}
CHECKERS = "course.code_exercises."  # its modules: the code checkers, one module per notebook
ENTRY_POINTS = {"cli", "__init__"}


def modules() -> dict[str, set[str]]:
    """Each lthkit module ("imp", "course", "course.plots") and the lthkit modules it imports,
    anywhere in its code."""
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        names[path] = ".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts)
    known = set(names.values())

    def resolve(module: str, alias: str | None = None) -> str:
        inner = module.split(".", 1)[1] if "." in module else ""
        if alias is not None:
            candidate = f"{inner}.{alias}" if inner else alias
            if candidate in known or not inner:
                return candidate
        return inner

    graph = {}
    for path, name in names.items():
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "lthkit":
                imported |= {resolve(node.module, a.name) for a in node.names}
            elif isinstance(node, ast.Import):
                imported |= {resolve(a.name) for a in node.names if a.name.startswith("lthkit.")}
        graph[name] = {m for m in imported if m in known or "." in m or m == COURSE} - {name}
    return graph


def is_course(name: str) -> bool:
    return name == COURSE or name.startswith(COURSE + ".")


def core() -> set[str]:
    return {m for m in modules() if not is_course(m)} - ENTRY_POINTS


def test_the_core_imports_nothing_from_the_course_helpers():
    graph = modules()
    assert {m for m in graph if is_course(m) and not m.startswith(CHECKERS)} == COURSE_MODULES, "the course's helpers changed: update COURSE_MODULES"
    assert {"data", "models", "masks", "rewind", "train", "imp", "stability", "results", "config"} <= core()
    offenders = {m: sorted(filter(is_course, graph[m])) for m in core() if any(map(is_course, graph[m]))}
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
    (tmp_path / "course").mkdir()
    (tmp_path / "course" / "__init__.py").write_text("")
    (tmp_path / "masks.py").write_text("def f():\n    from lthkit.course.plots import use_style\n")
    (tmp_path / "course" / "plots.py").write_text("import lthkit.masks\nfrom lthkit import course\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", tmp_path)
    assert modules() == {"masks": {"course.plots"}, "course": set(), "course.plots": {"masks", "course"}}
    assert core() == {"masks"}
