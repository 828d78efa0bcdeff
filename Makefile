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

# Debian's chromium drives the workbench's browser test; installed only when it is missing.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || echo "warning: could not install chromium; the browser test will be skipped"; }

test: setup browser
	$(BIN)/integrations validate
	$(BIN)/integrations test-mappings
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python bench/mapping_throughput.py

workbench: setup
	$(BIN)/integrations workbench

clean:
	rm -rf $(VENV) data/integrations.duckdb data/integrations.duckdb.wal .pytest_cache .hypothesis
