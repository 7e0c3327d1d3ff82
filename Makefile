# Two commands from a bare machine with Python 3.11+ and pip:
#   make lab    set everything up and open the course in JupyterLab
#   make test   set everything up and run every test
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.lthkit-installed

.PHONY: install lab test

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -c constraints.txt -e ".[course,test]"
	touch $(STAMP)

lab: install
	$(BIN)/jupyter lab notebooks/

test: install
	$(BIN)/python -m pytest
