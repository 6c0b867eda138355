# Two entry points, both usable on a fresh clone: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint typecheck pytest clean

# `make run` is the demo on the embedded default, whatever .env or the environment say: the
# sample CSV, a SQLite file and an outbox of its own under var/demo/, so it can never mail a
# reader nor mark a real ledger row sent. Real sends are `clubjapon-ops send`, never this.
DEMO := var/demo
DEMO_ENV := CLUBJAPON_CRM=csv CLUBJAPON_CSV_PATH=config/sample/contacts.csv \
	CLUBJAPON_DATABASE_URL=sqlite:///$(DEMO)/clubjapon.sqlite3 \
	CLUBJAPON_TRANSPORT=outbox CLUBJAPON_OUTBOX_DIR=$(DEMO)/outbox \
	CLUBJAPON_POSTAL_ADDRESS='Club Japon des Hauts-de-France (exemple); 1 rue Exemple; 59000 Lille'
CLI := $(DEMO_ENV) $(BIN)/clubjapon-ops --log-text -q
# What the commands printed after the demo need to read its store rather than .env's.
DEMO_READ := CLUBJAPON_DATABASE_URL=sqlite:///$(DEMO)/clubjapon.sqlite3

## Set up, then run the whole pipeline on the embedded default: sync the sample CSV into
## SQLite, send the newest ready edition (status: ready, passes the lint) to the local outbox, write a
## preview, show the ledger.
run: $(VENV)/.installed-run
	@edition=$$($(CLI) edition ready) && \
	$(CLI) sync && \
	$(CLI) send "$$edition" --yes && \
	$(CLI) preview "$$edition" --lang ja && \
	$(CLI) status "$$edition" && \
	echo "Messages: $(DEMO)/outbox/$$edition/" && \
	echo "The demo keeps its own store, $(DEMO)/clubjapon.sqlite3; paste these to read it:" && \
	echo "  $(DEMO_READ) $(BIN)/clubjapon-ops preview $$edition --serve" && \
	echo "  $(DEMO_READ) $(BIN)/clubjapon-ops status $$edition"

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
