"""Re-execute the course's notebooks in place at the classroom budget and stamp their run times.

    .venv/bin/python tools/refresh_notebooks.py [notebooks/03_winning_tickets.ipynb ...]

Each notebook runs through papermill with its own parameters (budget "classroom"), in
``notebooks/``, after its old outputs folder is removed so that nothing is resumed from an
earlier run. The measured wall time replaces the "**Run time**" line of its first cell, beside the
core path's computing (the cells outside the optional sections) and the anchor that says how fast
the host was: its fp32 matrix-multiply rate, against the course CPU's (``benchmarks/speed-cpu.json``).
The same figures go into the notebook's metadata (``lthkit.last_refresh``).
Notebooks that need CIFAR-10 are skipped unless it is on disk and verified, or they are named
(papermill then lets torchvision download it).
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import time
from pathlib import Path

import nbformat
import papermill

from lthkit import kernels  # noqa: F401  (papermill's engine "lthkit": kernels on Unix sockets)
from lthkit.course.doctor import matmul_rate

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
COURSE_CPU_GFLOPS = json.loads((ROOT / "benchmarks" / "speed-cpu.json").read_text())["matmul_gflops"]
RUNTIME = re.compile(r"(\*\*Run time\*\* on a 2-core laptop CPU at the `classroom` budget: )[^\n]*")
OPTIONAL = re.compile(r"^## \d+\. Optional: ", re.MULTILINE)


def core_path_seconds(nb) -> float:
    """Seconds the cells of ``nb`` outside its optional sections (headed ``## N. Optional: ...``, up to the
    next ``## `` heading) took in its last papermill run: the computing of a lab's core path."""
    seconds, optional = 0.0, False
    for cell in nb.cells:
        if cell.cell_type == "markdown" and cell.source.startswith("## "):
            optional = bool(OPTIONAL.match(cell.source))
        elif cell.cell_type == "code" and not optional:
            seconds += cell.metadata.get("papermill", {}).get("duration") or 0.0
    return seconds


def on_course_cpu(seconds: float, nb) -> float:
    """``seconds`` measured by ``nb``'s last refresh, scaled to the course CPU by the two hosts'
    matrix-multiply rates (a refresh before the anchor was recorded ran on the course CPU). A slower
    host loses more on convolutions than on large matrix products, so this errs long."""
    host = nb.metadata.get("lthkit", {}).get("last_refresh", {}).get("matmul_gflops", COURSE_CPU_GFLOPS)
    return seconds * host / COURSE_CPU_GFLOPS


def refresh(path: Path, gflops: float) -> float:
    shutil.rmtree(NOTEBOOKS / "outputs" / path.name[:2], ignore_errors=True)
    start = time.perf_counter()
    papermill.execute_notebook(str(path), str(path), cwd=str(NOTEBOOKS), log_output=False, progress_bar=False,
                               engine_name="lthkit")
    seconds = time.perf_counter() - start
    nb = nbformat.read(path, as_version=4)
    core = core_path_seconds(nb)
    nb.metadata.setdefault("lthkit", {})["last_refresh"] = {
        "seconds": round(seconds), "core_seconds": round(core), "matmul_gflops": round(gflops),
        "date": time.strftime("%Y-%m-%d")}
    stamp = _minutes(seconds) + (f" (measured by the last refresh, on a CPU that multiplies matrices at {gflops:.0f} "
                                 f"GFLOP/s; the course's benchmark CPU, {COURSE_CPU_GFLOPS:.0f})") + (
        f"; the core path, without the optional sections, {_minutes(core)}." if OPTIONAL.search(
            "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")) else ".")
    nb.cells[0].source = RUNTIME.sub(lambda m: m.group(1) + stamp, nb.cells[0].source)
    nbformat.write(nb, path)
    return seconds


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} seconds" if seconds < 90 else f"about {seconds / 60:.0f} minutes"


def runnable_here(path: Path) -> bool:
    """A notebook that needs CIFAR-10 runs by default only where it is on disk and verified, so
    that a refresh never starts a 170 MB download unasked."""
    from lthkit.catalogue import check

    needs = nbformat.read(path, as_version=4).metadata.get("lthkit", {}).get("needs")
    return needs != "cifar10" or check("cifar10").ok


if __name__ == "__main__":
    paths = [Path(p) for p in sys.argv[1:]] or sorted(NOTEBOOKS.glob("[0-9]*.ipynb"))
    gflops = matmul_rate("cpu") / 1e9
    print(f"this host multiplies matrices at {gflops:.0f} GFLOP/s (the course's benchmark CPU: {COURSE_CPU_GFLOPS:.0f})",
          flush=True)
    for p in paths:
        if not sys.argv[1:] and not runnable_here(p):
            print(f"{p.name}: skipped, it needs CIFAR-10 (`lthkit data download --datasets cifar10`, or name it)",
                  flush=True)
            continue
        print(f"{p.name}: {refresh(p.resolve(), gflops):.0f} s", flush=True)
