# The README's two commands: `make demo` and `make test`. Everything else is set-up they pull in.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo test lint typecheck cfn-lint unit integration e2e models local bench build clean

# The tests by kind, each runnable alone (tests/unit/test_make_targets.py checks that every test
# file is in exactly one). unit: offline, no runtime, under a minute. integration: the handlers and
# the local AWS pieces against moto, and the contract tests. e2e: the local runtime end to end, and
# the Lambda artifact (its build needs the package index).
UNIT_TESTS        := tests/unit tests/test_examples.py tests/test_model_endpoint_template.py \
                     tests/test_services_plan.py tests/test_template.py
INTEGRATION_TESTS := tests/integration tests/local tests/contract
E2E_TESTS         := tests/e2e tests/test_bench_smoke.py tests/test_build_artifact.py

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is required, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

models: $(STAMP)
	$(BIN)/python examples/train.py

demo: $(STAMP) models
	$(BIN)/ensemble-gateway demo

local: $(STAMP) models
	$(BIN)/ensemble-gateway local

lint: $(STAMP)
	$(BIN)/ruff check src tests examples bench tools
	$(BIN)/ruff format --check src tests examples bench tools

typecheck: $(STAMP)
	$(BIN)/mypy

cfn-lint: $(STAMP)
	$(BIN)/cfn-lint template.yaml

unit: $(STAMP)
	$(BIN)/pytest $(UNIT_TESTS)

integration: $(STAMP) models
	$(BIN)/pytest $(INTEGRATION_TESTS)

e2e: $(STAMP) models
	$(BIN)/pytest $(E2E_TESTS)

# One pytest run over all of tests/ (the three kinds above): the fault-injection figures print at its end.
test: lint typecheck cfn-lint models
	$(BIN)/pytest

bench: $(STAMP) models
	$(BIN)/python -m bench

# The Lambda artifact for `sam deploy`, in .aws-sam/build (as `sam build` lays it out), built for
# python3.12/arm64 with pip's --platform options: no Docker, no SAM CLI, no Python 3.12 needed.
build: $(STAMP)
	$(BIN)/python tools/build_lambda.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
