# Two commands from a bare machine with Python 3.11+ and pip:
#   make lab    set everything up and open the learner's copy of the course (student/) in JupyterLab
#   make test   set everything up and run every test
# Teachers: make lab-teacher opens notebooks/ itself, with the solutions and the committed outputs.
# Classrooms (README, "Start" and "Offline classrooms"), all optional:
#   make lab TORCH=cpu              PyTorch's CPU build, same pinned versions, from PyTorch's CPU index
#   make wheelhouse [TORCH=cpu] [WHEELHOUSE=dir]   every wheel the course needs in one folder
#                                   (default build/wheelhouse), for this platform and this Python
#   make lab WHEELHOUSE=dir         install from that folder alone (pip --no-index): no network
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.lthkit-installed
NOTEBOOKS := $(wildcard notebooks/[0-9]*.ipynb)
NBTEST := build/nbtest

.PHONY: install lab lab-teacher test notebooks bench student site wheelhouse

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
ifneq ($(WHEELHOUSE),)
	$(BIN)/python -m pip install --no-index --find-links $(WHEELHOUSE) -c constraints.txt -e ".[course,test,sweep]"
else ifeq ($(TORCH),cpu)
	$(BIN)/python -m pip install --no-deps --index-url $(TORCH_CPU_INDEX) $(TORCH_CPU_PINS)
	$(BIN)/python -m pip install -c constraints.txt -e ".[course,test,sweep]" $(TORCH_CPU_PINS)
else
	$(BIN)/python -m pip install -c constraints.txt -e ".[course,test,sweep]"
endif
	touch $(STAMP)

# TORCH=cpu: torch and torchvision at constraints.txt's versions with PyTorch's "+cpu" local label,
# taken (without their dependencies) from PyTorch's CPU index alone; everything else comes from
# PyPI as usual. No CUDA libraries (nvidia-*, triton) are installed.
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
TORCH_CPU_PINS = $(shell sed -n -E 's/^(torch|torchvision)==([^[:space:]+]+)[[:space:]]*$$/\1==\2+cpu/p' constraints.txt)

# Every wheel that `make install` needs, in one folder, to install laptops without a network:
# the dependencies at their pinned versions (pip wheel builds any that PyPI has only as source)
# and the build requirement of the editable lthkit itself (pyproject.toml's [build-system]).
# Built for the platform and Python of this machine: build it on one like the laptops.
# Use an empty folder for each kind (TORCH=cpu or not); a rerun refills the same folder.
WHEELHOUSE_DIR = $(or $(WHEELHOUSE),build/wheelhouse)
WHEELHOUSE_PIP = build/wheelhouse-pip/bin/python -m pip
BUILD_REQUIRES := setuptools>=68

wheelhouse:
	test -x build/wheelhouse-pip/bin/python || $(PYTHON) -m venv build/wheelhouse-pip
	mkdir -p $(WHEELHOUSE_DIR)
ifeq ($(TORCH),cpu)
	$(WHEELHOUSE_PIP) download --no-deps --index-url $(TORCH_CPU_INDEX) -d $(WHEELHOUSE_DIR)/.torch-cpu $(TORCH_CPU_PINS)
	$(WHEELHOUSE_PIP) wheel -w $(WHEELHOUSE_DIR) --find-links $(WHEELHOUSE_DIR)/.torch-cpu -c constraints.txt ".[course,test,sweep]" $(TORCH_CPU_PINS)
	rm -rf $(WHEELHOUSE_DIR)/.torch-cpu
else
	$(WHEELHOUSE_PIP) wheel -w $(WHEELHOUSE_DIR) -c constraints.txt ".[course,test,sweep]"
endif
	$(WHEELHOUSE_PIP) download -d $(WHEELHOUSE_DIR) "$(BUILD_REQUIRES)"
	rm -f $(WHEELHOUSE_DIR)/lthkit-*.whl
	@echo "$(WHEELHOUSE_DIR): $$(ls $(WHEELHOUSE_DIR) | wc -l) files, $$(du -sh $(WHEELHOUSE_DIR) | cut -f1). On each laptop: make lab WHEELHOUSE=<that folder>"

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
# pytest-xdist runs one worker per core, each (and each kernel it starts) on one thread, --dist loadfile
# keeping each file, and so a notebook's cells, on one worker and one kernel; tests/conftest.py spreads
# the student copies one by one. The kernels listen on Unix sockets (lthkit.kernels), so two started at
# once cannot be handed one TCP port. A cell that runs over 10 minutes fails. TEST_WORKERS=0 runs one
# process on every core.
TEST_WORKERS ?= auto
TEST_THREADS := $(if $(filter 0,$(TEST_WORKERS)),$(shell nproc),1)
test: install
	rm -rf $(NBTEST)
	$(BIN)/python tools/prepare_test_copies.py $(NBTEST) $(NOTEBOOKS)
	OMP_NUM_THREADS=$(TEST_THREADS) $(BIN)/python -m pytest tests $(NBTEST) --nbval-lax \
	  --nbval-sanitize-with tests/nbval_sanitize.cfg --nbval-cell-timeout 600 \
	  -n $(TEST_WORKERS) --dist loadfile

# Re-execute every notebook in place at the classroom budget, refreshing its committed outputs.
notebooks: install
	$(BIN)/python tools/refresh_notebooks.py

# The speed tables (not part of the tests): lthkit against a hand-written loop and the FLOP bound;
# what a pruned LeNet saves in bytes and milliseconds by format and kernel; a sweep alone and on Dask.
bench: install
	$(BIN)/python benchmarks/speed.py
	$(BIN)/python benchmarks/ship.py
	$(BIN)/python benchmarks/sweep.py
	$(BIN)/python benchmarks/stacked.py

# The teacher's release: students' copies of the notebooks, without solutions or outputs, to hand
# out (docs/teachers_guide.md). Rewrites every copy in build/student/ (make lab never overwrites).
student: install
	$(BIN)/python tools/student_copies.py build/student

# The course as static HTML from the committed outputs, with navigation: build/site/index.html.
# Works offline: nothing is fetched from the internet, and sliders are replaced by a note.
site: install
	$(BIN)/python tools/build_site.py build/site
