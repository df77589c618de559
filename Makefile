# mal: the two commands are `make pipeline` (set up + run the quick study) and `make test`.
# `make browser-test` runs every notebook in JupyterLab with headless Chromium (installs chromium and playwright).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PROFILE ?= quick
STAMP  := $(VENV)/.mal-installed

.PHONY: setup pipeline test test-fast browser-test lint bench gpu-check corpus clean-runs

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

# The browser test has its own target (it needs chromium and takes minutes).
test: setup
	$(PY) -m pytest -q -m "not browser"

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

# Debian's chromium (installed when running as root) driven by PyPI's playwright: no browser is downloaded.
browser-test: setup
	@command -v chromium >/dev/null || [ "$$(id -u)" != 0 ] || (apt-get update && apt-get install -y chromium)
	@command -v chromium >/dev/null || { echo "browser-test needs Debian's chromium: sudo apt-get install chromium"; exit 1; }
	$(PY) -m pip install playwright
	$(PY) -m pytest -q -s -m browser tests/notebooks/test_browser.py

lint: setup
	$(PY) -m ruff check mal tests benchmarks
	$(PY) -m ruff format --check mal tests benchmarks

bench: setup
	$(PY) -m benchmarks

# On a CUDA machine: every model × MAL recipe trains under bf16 autocast; step times, AMP speed-up, peak memory.
gpu-check: setup
	$(PY) -m benchmarks.gpu_check

corpus: setup
	$(PY) -m mal corpus build --profile $(PROFILE)

clean-runs:
	rm -rf runs/
