# Two commands from a bare machine with Python 3.11+ and pip:
#   make lab    set everything up and open the learner's copy of the course (student/) in JupyterLab
#   make test   set everything up and run every test
# Teachers: make lab-teacher opens notebooks/ itself, with the solutions and the committed outputs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.lthkit-installed
NOTEBOOKS := $(wildcard notebooks/[0-9]*.ipynb)
NBTEST := build/nbtest

.PHONY: install lab lab-teacher test notebooks bench student site

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -c constraints.txt -e ".[course,test]"
	touch $(STAMP)

# The learner's copy: student/ (git-ignored, outside build/, which is disposable). Only notebooks
# missing there are written, never one already there: a learner's work is never overwritten.
# The notebooks find data/ and notebooks/reference/ through lthkit itself, from any folder.
LEARNER_DIR := student

lab: install
	$(BIN)/python tools/student_copies.py --keep-existing $(LEARNER_DIR)
	@echo "Opening the learner's copy in $(LEARNER_DIR)/ (no solutions, no outputs; your work there is kept). The teacher's copy, with solutions and committed outputs, is notebooks/: make lab-teacher."
	$(BIN)/jupyter lab $(LEARNER_DIR)/

lab-teacher: install
	@echo "Opening the teacher's copy in notebooks/ (solutions and committed outputs). The learner's copy is $(LEARNER_DIR)/: make lab."
	$(BIN)/jupyter lab notebooks/

# Every notebook runs under nbval at the "test" budget: papermill injects the parameter into a
# copy (without running it) and nbval executes the copy, checking the cells tagged nbval-check-output.
# Notebook kernels read the real datasets from data/ (tests/conftest.py copies them from ../shared).
test: install
	rm -rf $(NBTEST) && mkdir -p $(NBTEST)
	for nb in $(NOTEBOOKS); do \
	  $(BIN)/papermill --prepare-only --log-level WARNING "$$nb" "$(NBTEST)/$$(basename $$nb)" -p budget test || exit 1; \
	done
	$(BIN)/python -m pytest tests $(NBTEST) --nbval-lax \
	  --nbval-sanitize-with tests/nbval_sanitize.cfg

# Re-execute every notebook in place at the classroom budget, refreshing its committed outputs.
notebooks: install
	$(BIN)/python tools/refresh_notebooks.py

# The speed table (not part of the tests): lthkit against a hand-written loop and the FLOP bound.
bench: install
	$(BIN)/python benchmarks/speed.py

# The teacher's release: students' copies of the notebooks, without solutions or outputs, to hand
# out (docs/teachers_guide.md). Rewrites every copy in build/student/ (make lab never overwrites).
student: install
	$(BIN)/python tools/student_copies.py build/student

# The course as static HTML from the committed outputs, with navigation: build/site/index.html.
# Works offline: nothing is fetched from the internet, and sliders are replaced by a note.
site: install
	$(BIN)/python tools/build_site.py build/site
