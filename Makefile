# Two commands do all set-up on a fresh machine: `make run` and `make test`. Both create .venv when missing
# and reinstall only when pyproject.toml changed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/journey validate journeys/
	$(BIN)/journey dev

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check engine activities tests bench
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python bench/compile.py --nodes 2000
	$(BIN)/python bench/throughput.py --accounts 1000
	$(BIN)/python bench/events.py --events 20000
	$(BIN)/python bench/import.py --accounts 100000 --people 500000
	$(BIN)/python bench/scale.py --accounts 20000

clean:
	rm -rf $(VENV) .journey .pytest_cache .ruff_cache .mypy_cache
