# graphkit: two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
# Installing is incremental: the stamp is rebuilt only when pyproject.toml changes, because
# torch from PyPI is a multi-gigabyte download that must not repeat on every run.
STAMP     := $(VENV)/.graphkit-installed
DEV_STAMP := $(VENV)/.graphkit-dev-installed
# Where graphkit finds the Neo4j launcher that `make neo4j` builds (graphkit/store/neo4j_server.py).
export GRAPHKIT_NEO4J_HOME ?= $(CURDIR)/services/neo4j/target

.PHONY: run test bench neo4j browser lint format sample clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(DEV_STAMP): pyproject.toml $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,spark]'
	touch $@

run: $(STAMP)
	$(BIN)/graphkit run data/sample --out runs/sample

neo4j:
	bash services/neo4j/build.sh

# The report test renders report.html in headless Chromium (Debian's package).
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

test: $(DEV_STAMP) neo4j browser
	$(BIN)/python -m pytest -q

bench: $(DEV_STAMP) neo4j
	$(BIN)/python -m pytest -q -m slow -p no:cacheprovider
	$(BIN)/python bench/run_all.py

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

format: $(DEV_STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

sample: $(STAMP)
	$(BIN)/graphkit generate data/sample --customers 2000 --seed 20261129 --format csv

clean:
	rm -rf runs .pytest_cache services/neo4j/target
