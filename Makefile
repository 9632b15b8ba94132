# Two set-up-and-go targets: `make audit` (the main job) and `make test`.
# Both create .venv and install the package into it on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: audit test test-fast test-browser lint typecheck bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,tensorboard,coco,timm,browser]'
	touch $(STAMP)

audit: $(STAMP)
	$(BIN)/python -m pytest audits/ $(ARGS)

test: $(STAMP) lint typecheck
	$(BIN)/python -m pytest -n 2 -m "not browser" --doctest-modules modelaudit tests $(ARGS)

# The inner loop: the same tests minus those marked slow (subprocess pytest runs, shrinking
# searches), without lint and type check; narrow it with TESTS=tests/hooks or ARGS="-k name".
# `make test` still runs everything but the browser test (`make test-browser`).
TESTS ?= modelaudit tests
test-fast: $(STAMP)
	$(BIN)/python -m pytest -n 2 -m "not slow and not browser" --doctest-modules $(TESTS) $(ARGS)

# The HTML report in headless Chromium (Debian's `chromium`, driven by playwright-python
# at the system binary: no `playwright install`). Not part of `make test`; .ci/run runs it.
test-browser: $(STAMP)
	$(BIN)/python -m pytest -m browser tests/report/test_browser.py $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check modelaudit tests audits bench scripts conftest.py
	$(BIN)/ruff format --check modelaudit tests audits bench scripts conftest.py
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

# Benchmarks run in their own venv (.venv-bench) so the peers they compare against
# (pytorch-grad-cam, TorchCAM, Captum, Quantus) never enter .venv.
BENCH_VENV  := .venv-bench
BENCH_BIN   := $(BENCH_VENV)/bin
BENCH_STAMP := $(BENCH_VENV)/.installed

$(BENCH_STAMP): pyproject.toml
	test -x $(BENCH_BIN)/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_BIN)/python -m pip install --quiet --upgrade pip
	$(BENCH_BIN)/python -m pip install --quiet 'torch>=2.4' 'torchvision>=0.19'
	$(BENCH_BIN)/python -m pip install --quiet -e '.[bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BENCH_BIN)/python bench/run_all.py $(ARGS)

clean:
	rm -rf $(VENV) $(BENCH_VENV) .pytest_cache .mypy_cache .ruff_cache audit-report
