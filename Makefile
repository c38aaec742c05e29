# soundsim: two commands do all set-up on a fresh machine (Python 3.11, no GPU).
#   make demo   create .venv if needed, install pinned dependencies, run the workflow on the demo collection
#   make test   same set-up, then the test suite
# Both are idempotent: the second run reinstalls nothing and Snakemake finds nothing to do.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.soundsim-installed
TORCH  := $(shell grep -E '^torch==' requirements.txt)
CORES  ?= all
PYTEST_ARGS ?=

.PHONY: help setup demo test lint dryrun clean-demo

help:
	@echo "make demo   - set up .venv and run the workflow on the demo collection (results/demo/)"
	@echo "make test   - set up .venv and run the test suite"
	@echo "make lint   - snakemake --lint"
	@echo "make dryrun - snakemake -n (plan the DAG)"

# Re-run the install only when the pins or the package metadata change.
$(STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo ">> installing $(TORCH) first (CPU build), then requirements.txt"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "$(TORCH)"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

setup: $(STAMP)

demo: setup
	$(BIN)/snakemake --cores $(CORES) --configfile config.yaml
	@echo ">> demo outputs are under results/demo/ (manifest.csv, labels.csv, families.json, bad_audio.csv, audio/)"

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: setup
	$(BIN)/snakemake --lint --configfile config.yaml

dryrun: setup
	$(BIN)/snakemake -n --cores 1 --configfile config.yaml
