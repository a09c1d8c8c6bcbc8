# QFlow's development tasks. `make demo` runs the demo workflow, `make test` the test suite,
# `make docs` builds the documentation site; each creates the virtualenv in .venv and installs
# everything first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install system demo test unit e2e lint docs bench bench-peers clean

# System packages: graphviz's `dot` renders `qflow visualise` (installed with apt-get when
# running as root where apt exists; elsewhere QFlow writes DOT and says how to install it), and
# Debian's chromium runs the JupyterLab browser tests (skipped without it; never `playwright install`).
system:
	@command -v dot >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz >/dev/null; \
	  else echo "graphviz is not installed: qflow visualise will write DOT files"; fi; }
	@[ -x /usr/bin/chromium ] || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium is not installed: the browser tests (pytest -m browser) will be skipped"; fi; }

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) system

demo: $(STAMP)
	cd examples/digits && ../../$(PY) workflow.py

test: $(STAMP) system lint docs
	$(PY) -m pytest -n 2 tests

unit: $(STAMP)
	$(PY) -m pytest tests/unit

e2e: $(STAMP)
	$(PY) -m pytest -n 2 tests/e2e

lint: $(STAMP)
	$(VENV)/bin/ruff check qflow jupyter_ext tests benchmarks examples docs_hooks
	$(VENV)/bin/lint-imports

# The site in site/: the CLI reference is generated from the app, the API reference from the
# docstrings, the tutorials are executed (docs_hooks/). --strict: a broken link fails the build.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict -d site

bench: $(STAMP)
	$(PY) benchmarks/overhead.py
	$(PY) benchmarks/large_arrays.py
	$(PY) benchmarks/cli_startup.py
	$(PY) benchmarks/trackers.py
	$(PY) benchmarks/notebook_overhead.py
	$(PY) benchmarks/tuning.py
	$(PY) benchmarks/dask_overhead.py

# QFlow against Hamilton, Kedro, joblib and Dask (docs/performance.md): the peers live in a
# virtualenv of their own, .venv-peers, beside QFlow installed from this folder.
PEERS_VENV ?= .venv-peers
PEERS_STAMP := $(PEERS_VENV)/.installed

$(PEERS_STAMP): pyproject.toml
	$(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(PEERS_VENV)/bin/python -m pip install --quiet -e '.[data]' sf-hamilton kedro \
	  'kedro-datasets[pickle-pickledataset]' joblib dask
	touch $(PEERS_STAMP)

bench-peers: $(PEERS_STAMP)
	$(PEERS_VENV)/bin/python benchmarks/peers/run.py $(ARGS)

clean:
	rm -rf $(VENV) $(PEERS_VENV) .pytest_cache examples/*/.qflow site
