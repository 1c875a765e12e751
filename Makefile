# Pynomaly Operator: every developer and CI entry point. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: help
help: ## list the targets with what they do
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: system-deps
system-deps: ## install Debian packages the tests use for real (redis, postgresql, pgbouncer, lua)
	@scripts/system-deps.sh

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

.PHONY: install
install: $(VENV)/.installed ## create .venv in the repo root with the service, the operator and dev tools

.PHONY: setup
setup: system-deps install controlplane ## everything the tests need: packages, .venv, control plane binary

.PHONY: lint
lint: install ## ruff lint + format check + import layering contracts
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

.PHONY: fmt
fmt: install ## apply ruff formatting and autofixes
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

.PHONY: types
types: install ## mypy --strict over both packages
	$(VENV)/bin/mypy

.PHONY: test
test: setup ## run the whole test suite (starts real Redis, Postgres, PgBouncer and the control plane)
	$(VENV)/bin/pytest $(PYTEST_ARGS)

.PHONY: check
check: setup lint types test ## lint + types + tests: exactly what CI runs (the README's test command)
