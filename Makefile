# The two commands a newcomer needs: `make demo` and `make test`.
# Both create .venv with Python 3.11 and install the package with its dev extra first.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test lint bench bench-all

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e '.[dev]'
	touch $@

demo: setup
	$(BIN)/gtm-pipeline demo

# -n auto: half as many pytest-xdist workers again as cores, at most 4 (gtm_pipeline_tests/conftest.py):
# the suite waits on emulators, subprocesses and PostgreSQL much of the time. worksteal: a worker
# that runs out takes tests from the end of another's queue; the tests marked heavy start first,
# one at the head of each worker's queue.
test: setup
	$(BIN)/python -m pytest -n auto --maxprocesses=4 --dist worksteal --durations=15

lint: setup
	$(BIN)/ruff check gtm_pipeline gtm_pipeline_tests benchmarks

# The sync comparison table (README, Benchmarks); bench-all adds the detail benchmarks.
bench: setup
	$(BIN)/pip install -q -e '.[dev,bench]'
	$(BIN)/python -m benchmarks.run

bench-all: setup
	$(BIN)/pip install -q -e '.[dev,bench]'
	$(BIN)/python -m benchmarks.run --all
