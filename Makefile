# The two commands of the README, and a few more for developers.
# A virtual environment in .venv holds everything; nothing is installed system-wide.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
OUT    ?= runs/demo

.PHONY: demo test lint docs docs-check notebooks bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Main job: train the VAE on the embedded Fashion-MNIST subset and write its figures. The demo
# directory is the demo's own, so a second `make demo` replaces it (--overwrite); runs of your
# own are never replaced without that option.
demo: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[plot]'
	$(BIN)/nnscratch train vae --preset classic --latent 2 --epochs 10 --out $(OUT)/vae --overwrite
	@echo "figures, log and checkpoint written to $(OUT)/vae"

# The test suite (what CI runs).
test: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pytest -q

# Lint and import order with ruff, configured in pyproject.toml (part of CI). To sort the
# imports in place: .venv/bin/ruff check --fix --select I .
lint: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/ruff check .

# The documentation, warnings as errors: docs/_build/html/index.html
docs: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[docs]'
	$(BIN)/python -m sphinx -W --keep-going -q -b html docs docs/_build/html

# The built docs load no remote script, and every page's math typesets offline in headless
# Chromium (Debian's chromium; without it the browser half is skipped, unless CI=true).
docs-check: docs
	$(BIN)/python scripts/check_docs.py docs/_build/html $(if $(CI),--require-browser)

# The chapters, executed (full mode, tens of minutes on 2 cores): notebooks/NN_name.ipynb with
# their outputs and figures, each stamped with the sha256 of the jupytext source NN_name.py it
# ran from (scripts/execute_notebooks.py). They are committed: the site shows them, and
# tests/test_docs.py fails on one whose source changed since. CHAPTERS="01 05" runs only
# those. NNSCRATCH_FAST=1 make notebooks writes fast-mode runs to runs/notebooks_fast/ (a
# minute in all), never over the committed chapters. One BLAS thread unless the environment
# says otherwise: the matrices are small, and on a busy machine extra BLAS threads spin
# against other processes (20 times slower measured on a loaded 2-core machine).
CHAPTERS ?=
notebooks: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[notebooks]'
	$(BIN)/python scripts/execute_notebooks.py $(CHAPTERS)

# The GPU check (docs/gpu.md): the suite with CuPy, the GPU step benchmark against PyTorch on
# CUDA and a train / sample / eval run on CuPy, about 6 minutes on one H200, no network, no
# install (runs from this tree with the python that has CuPy). Summary and logs go to
# GPU_CHECK_SUMMARY's directory. gpu-check-dry runs the same script on NumPy in under a minute.
GPU_CHECK_SUMMARY ?= runs/gpu_check/summary.md
gpu-check:
	PYTHONPATH=$(CURDIR)$${PYTHONPATH:+:$$PYTHONPATH} $(PYTHON) scripts/gpu_check.py \
	  --summary "$(GPU_CHECK_SUMMARY)"

gpu-check-dry:
	PYTHONPATH=$(CURDIR)$${PYTHONPATH:+:$$PYTHONPATH} $(BIN)/python scripts/gpu_check.py \
	  --dry-run --summary "$(GPU_CHECK_SUMMARY)"

clean:
	rm -rf $(VENV) build dist *.egg-info docs/_build
