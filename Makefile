# Two entry points: `make demo` (benchmark every router on RouterDC data, then train and route
# with the kNN router; no keys, no servers) and `make test` (lint, type check, docs build, then
# the test suite). Each creates its virtual environment if needed; `.ci/run` runs both.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch; a bare `torch` requirement would pull a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0
# The extras the demo runs on: graphrouter, one of the routers of configs/bench/routerdc.yaml,
# needs `graph` (torch-geometric). tests/unit/test_cli.py checks this list against that config.
DEMO_EXTRAS ?= graph

# What `make lint` checks (a folder that is not there is left out).
LINT_PATHS := $(wildcard src data_pipeline tests benchmarks examples custom_routers scripts)

.PHONY: demo test bench-overhead bench-latency bench-personal personal-data screenshot lint docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.core: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.dev: pyproject.toml $(VENV)/.core
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

# Only what the demo runs, not the dev extra: .ci/run runs the demo in a venv of its own,
# so a missing install step here fails CI instead of hiding behind `make test`'s installs.
$(VENV)/.demo: pyproject.toml Makefile $(VENV)/.core
	$(BIN)/python -m pip install -q -e ".[$(DEMO_EXTRAS)]"
	touch $@

demo: $(VENV)/.demo
	$(BIN)/llmrouter bench --config configs/bench/routerdc.yaml
	$(BIN)/llmrouter train --router knnrouter --config configs/train/knnrouter.yaml
	$(BIN)/llmrouter infer --router knnrouter --config configs/infer/knnrouter.yaml --route-only \
		--query "Write a Python function that returns the n-th Fibonacci number."

# What CI runs: the same checks as .pre-commit-config.yaml, the docs build, then the tests.
test: $(VENV)/.dev lint docs
	$(BIN)/python -m pytest -q

bench-overhead: $(VENV)/.dev
	$(BIN)/python benchmarks/overhead.py

# MiniLM against the static featuriser; one BLAS thread, as a serving worker per core runs.
bench-latency: $(VENV)/.dev
	OPENBLAS_NUM_THREADS=1 $(BIN)/python benchmarks/route_latency.py

# Simulated users over the RouterDC training data, for configs/train/{gmtrouter,personalizedrouter}.yaml.
SHARED ?= ../shared/data/llmrouter_example
personal-data: $(VENV)/.core
	$(BIN)/llmrouter simulate-users --data $(SHARED)/routerdc_train.json \
		--llm-data $(SHARED)/default_llm.json --strategy hidden_taste --users 200 --seed 0 \
		--output data/personal/users.jsonl

# Personalised routers against the best non-personalised one, offline and with online feedback.
bench-personal: $(VENV)/.dev
	$(BIN)/python benchmarks/personalised.py
	$(BIN)/python benchmarks/personal_feedback.py

# The README's picture of the chat demo: needs Debian's chromium and chromium-driver
# (apt-get install chromium chromium-driver).
screenshot: $(VENV)/.dev
	$(BIN)/python -m pip install -q -e ".[demo,screenshot]"
	$(BIN)/python scripts/demo_screenshot.py --out docs/images/chat_demo.png

lint: $(VENV)/.dev
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/mypy

# The documentation site (mkdocs.yml), warnings as errors, into site/ (git-ignored).
# `$(BIN)/mkdocs serve` previews it while you edit.
docs: $(VENV)/.dev
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) models .pytest_cache site
