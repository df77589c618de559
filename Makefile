# mal: the two commands are `make pipeline` (set up + run the quick study) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PROFILE ?= quick
STAMP  := $(VENV)/.mal-installed

.PHONY: setup pipeline test test-fast lint bench corpus clean-runs

setup: $(STAMP)

# Reinstall when the dependency list changes.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip >/dev/null
	$(PY) -m pip install -e ".[dev]"
	$(PY) -m ipykernel install --prefix $(VENV) --name python3 >/dev/null
	touch $(STAMP)

pipeline: setup
	$(PY) -m mal pipeline --profile $(PROFILE)

test: setup
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

lint: setup
	$(PY) -m ruff check mal tests benchmarks
	$(PY) -m ruff format --check mal tests benchmarks

bench: setup
	$(PY) -m benchmarks

corpus: setup
	$(PY) -m mal corpus build --profile $(PROFILE)

clean-runs:
	rm -rf runs/
