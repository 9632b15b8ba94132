# Two set-up-and-go targets: `make audit` (the main job) and `make test`.
# Both create .venv and install the package into it on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: audit test lint typecheck bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

audit: $(STAMP)
	$(BIN)/python -m pytest audits/ $(ARGS)

test: $(STAMP) lint typecheck
	$(BIN)/python -m pytest -n 2 --doctest-modules modelaudit tests $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check modelaudit tests audits bench scripts
	$(BIN)/ruff format --check modelaudit tests audits bench scripts

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache audit-report
