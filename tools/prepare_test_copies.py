"""Write the copies of the notebooks that ``make test`` runs: each with ``budget = "test"`` injected by
papermill after its parameters cell, not executed (``papermill --prepare-only``), all in one process
(papermill's command line starts Python once per notebook: 23 s for thirteen on the course's CPU, against 3 s).

    .venv/bin/python tools/prepare_test_copies.py build/nbtest notebooks/[0-9]*.ipynb
"""

import sys
from pathlib import Path

import papermill


def prepare(out: Path, notebooks: list[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for notebook in notebooks:
        papermill.execute_notebook(notebook, str(out / Path(notebook).name), parameters={"budget": "test"},
                                   prepare_only=True, log_output=False, progress_bar=False)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    prepare(Path(sys.argv[1]), sys.argv[2:])
