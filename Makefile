# The two commands: `make run` (the main job on the embedded defaults) and `make test`.
# Both create .venv when missing and install the project into it (again only when pyproject changes).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test setup bench workbench clean browser

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(BIN)/integrations run

test: setup
	$(BIN)/integrations validate
	$(BIN)/integrations test-mappings
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python bench/mapping_throughput.py

clean:
	rm -rf $(VENV) data/integrations.duckdb data/integrations.duckdb.wal .pytest_cache .hypothesis
