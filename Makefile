# The two commands of the README are `make run` and `make test`; everything else is for developers.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test test-fast test-kafka lint typecheck bench clean

# A fresh machine has Python, Java and Maven; the venv and every Python package come from here.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## Run the platform locally: Kafka from its jars, the four services on SQLite, a synthetic year of reports.
run: install
	$(BIN)/registry up --demo

## The whole test suite: unit, integration on real Kafka and PostgreSQL, end to end. CI runs exactly this.
test: install
	$(BIN)/pytest -q

## The fast suite: no broker, no database server, seconds.
test-fast: install
	$(BIN)/pytest -q -m "not kafka and not postgres and not slow"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy shared services deploy

bench: install
	$(BIN)/python -m deploy.bench

clean:
	rm -rf var $(VENV) .pytest_cache .mypy_cache .ruff_cache
