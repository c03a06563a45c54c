# The README's two commands: `make demo` and `make test`. Everything else is set-up they pull in.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo test lint typecheck cfn-lint unit models local bench build clean

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
	$(BIN)/pytest

test: lint typecheck cfn-lint unit

bench: $(STAMP) models
	$(BIN)/python -m bench

# The Lambda artifact for `sam deploy`, in .aws-sam/build (as `sam build` lays it out), built for
# python3.12/arm64 with pip's --platform options: no Docker, no SAM CLI, no Python 3.12 needed.
build: $(STAMP)
	$(BIN)/python tools/build_lambda.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
