# Two entry points, both usable on a fresh clone: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint typecheck pytest clean

# The newest edition in config/editions/ (file names start with the date).
EDITION ?= $(basename $(notdir $(lastword $(sort $(wildcard config/editions/*.yaml)))))

## Set up, then run the whole pipeline on the embedded default: sync the sample CSV into
## SQLite, send the newest edition to the local outbox, write a preview, show the ledger.
run: $(VENV)/.installed-run
	$(BIN)/clubjapon-ops --log-text -q sync
	$(BIN)/clubjapon-ops --log-text -q send $(EDITION) --yes
	$(BIN)/clubjapon-ops --log-text -q preview $(EDITION) --lang ja
	$(BIN)/clubjapon-ops --log-text -q status $(EDITION)
	@echo "Messages: var/outbox/$(EDITION)/   Preview page: $(BIN)/clubjapon-ops preview $(EDITION) --serve"

## Set up, then run the linters, the type checker and the whole test suite.
test: $(VENV)/.installed-test
	$(MAKE) --no-print-directory lint typecheck pytest

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests bench

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

pytest: $(VENV)/.installed-test
	$(BIN)/pytest $(PYTEST_ARGS)

# Debian's python3 lacks ensurepip unless python3-venv is installed: fall back to virtualenv.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV) && $(PYTHON) -m pip install -q --user virtualenv && $(PYTHON) -m virtualenv -q $(VENV); }
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@ $(VENV)/.installed-run

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
