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
PIP    := python -m pip install --quiet --disable-pip-version-check
# Model environments (envs/<env>.txt -> .venvs/<env>): the default config (make demo)
# needs DEMO_ENVS; the test suite runs the model tests of every env in TEST_ENVS
# (a model test whose env is not built is skipped, saying so); `make envs` builds ENVS.
DEMO_ENVS ?= musicnn
TEST_ENVS ?= musicnn essentia-tf msclap laion-clap hear
ENVS   ?= $(TEST_ENVS)
stamps = $(foreach e,$(1),.venvs/$(e)/.soundsim-installed)

.PHONY: help setup envs demo test test-models lint format dryrun

help:
	@echo "make demo   - set up .venv and run the workflow on the demo collection (results/demo/)"
	@echo "make test   - set up .venv and the model envs (TEST_ENVS), run the test suite"
	@echo "make envs   - build the model environments .venvs/<env> (ENVS=\"a b\" to choose)"
	@echo "make test-models - only the model tests (tests/test_models*.py)"
	@echo "make lint   - snakemake --lint, snakefmt --check ."
	@echo "make format - snakefmt the rule files"
	@echo "make dryrun - snakemake -n (plan the DAG)"

# Re-run the install only when the pins or the package metadata change.
$(STAMP): requirements.txt requirements.nodeps.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo ">> .venv: installing $(TORCH) first (CPU build), then requirements.txt"
	$(BIN)/$(PIP) "$(TORCH)"
	$(BIN)/$(PIP) -r requirements.txt
	$(BIN)/$(PIP) --no-deps -r requirements.nodeps.txt
	$(BIN)/$(PIP) --no-deps -e .
	@touch $@

# One virtual environment per model environment: .venvs/<env> from envs/<env>.txt
# (+ envs/<env>.nodeps.txt installed with --no-deps), with soundsim itself (editable).
.SECONDEXPANSION:
.venvs/%/.soundsim-installed: envs/%.txt $$(wildcard envs/$$*.nodeps.txt) pyproject.toml
	@test -x .venvs/$*/bin/python || $(PYTHON) -m venv .venvs/$*
	@echo ">> .venvs/$*: installing envs/$*.txt"
	.venvs/$*/bin/$(PIP) -r envs/$*.txt
	@if [ -f envs/$*.nodeps.txt ]; then .venvs/$*/bin/$(PIP) --no-deps -r envs/$*.nodeps.txt; fi
	.venvs/$*/bin/$(PIP) --no-deps -e .
	@touch $@

setup: $(STAMP) $(call stamps,$(DEMO_ENVS))

envs: $(STAMP) $(call stamps,$(ENVS))

demo: setup
	$(BIN)/snakemake --cores $(CORES)
	$(BIN)/snakemake --report results/demo/report.html
	@echo ">> demo outputs are under results/demo/: manifest.csv, labels.csv, families.json, bad_audio.csv, embeddings/, metrics/, tables/, figures/, report.html, logs/"

test: setup $(call stamps,$(TEST_ENVS))
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-models: setup $(call stamps,$(TEST_ENVS))
	$(BIN)/python -m pytest tests/test_models*.py $(PYTEST_ARGS)

lint: setup
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check .

format: setup
	$(BIN)/snakefmt .

dryrun: setup
	$(BIN)/snakemake -n --cores 1
