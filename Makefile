# QFlow's development tasks. `make demo` runs the demo workflow, `make test` the test suite;
# both create the virtualenv in .venv and install everything first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test unit e2e lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	cd examples/digits && ../../$(PY) workflow.py

test: $(STAMP) lint
	$(PY) -m pytest -n 2 tests

unit: $(STAMP)
	$(PY) -m pytest tests/unit

e2e: $(STAMP)
	$(PY) -m pytest -n 2 tests/e2e

lint: $(STAMP)
	$(VENV)/bin/ruff check qflow tests benchmarks examples
	$(VENV)/bin/lint-imports

bench: $(STAMP)
	$(PY) benchmarks/overhead.py
	$(PY) benchmarks/large_arrays.py

clean:
	rm -rf $(VENV) .pytest_cache examples/*/.qflow
