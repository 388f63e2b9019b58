# Two commands on a fresh machine: `make demo` (the main job on the embedded
# default) and `make test` (lint, format check, test suite). Both create or
# update the project's virtual environment in .venv when needed. Caches that
# tools would put in the home folder (pip, matplotlib) stay in the project.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export MPLCONFIGDIR := $(CURDIR)/.cache/matplotlib
export PIP_NO_CACHE_DIR := 1

.PHONY: demo test test-fast bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/tmkt-train pipeline pipelines/demo.toml

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_binning.py
	$(BIN)/python benchmarks/bench_convert.py
	$(BIN)/python benchmarks/bench_read.py
	$(BIN)/python benchmarks/bench_train.py

clean:
	rm -rf demo_out .cache .pytest_cache .ruff_cache .hypothesis
