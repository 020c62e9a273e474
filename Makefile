# Everyday commands. `make demo` and `make test` are the README's quick start: each creates the
# virtual environment .venv on first use (re-run only when setup.cfg or pyproject.toml change).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# The suite runs in parallel (pytest-xdist, one worker per core, at most 8: each holds TensorFlow in
# memory), a test file per worker (--dist loadfile: a module's shared fixture is built once, not in
# each worker), files in collection order (--no-loadscope-reorder: tests/conftest.py puts the
# heaviest first, so the workers finish together); `make test XDIST=` runs it in one process.
# --durations=20 lists the slowest tests.
XDIST  ?= -n auto --maxprocesses 8 --dist loadfile --no-loadscope-reorder

.PHONY: demo test test-all lint typecheck docs bench clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[all]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m tfopt.demos.demo

test: $(STAMP)
	$(PY) -m pytest -m "not slow" $(XDIST) --durations=20

test-all: $(STAMP)
	$(PY) -m pytest $(XDIST) --durations=20

lint: $(STAMP)
	$(PY) -m ruff check tfopt tests scripts
	$(PY) -m mypy

# The documentation site (mkdocs.yml): docs/ into site/, strict, so a broken link, anchor or API
# reference fails; the CLI reference and the coverage/corpus tables are generated (scripts/docs_hooks.py).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict

bench: $(STAMP)
	$(PY) scripts/benchmark.py all

clean:
	rm -rf $(VENV) build site *.egg-info
