# Two entry points a new user needs: `make serve` and `make test`. Both set up .venv on first use.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: serve test lint schema bench bench-ingest bench-metrics bench-billing postgres

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

serve: $(BIN)/.installed
	$(BIN)/accrual serve

# The suite runs on SQLite and PostgreSQL; the local cluster is started if it is down.
test: $(BIN)/.installed postgres
	$(BIN)/python -m pytest

postgres:
	@pg_isready -q -h 127.0.0.1 -p 5432 || pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start
	@for i in 1 2 3 4 5 6 7 8 9 10; do pg_isready -q -h 127.0.0.1 -p 5432 && exit 0; sleep 1; done; \
	  echo "PostgreSQL is not reachable on 127.0.0.1:5432" >&2; exit 1

lint: $(BIN)/.installed
	$(BIN)/ruff check gateway domains persistence tests bench
	$(BIN)/lint-imports

schema: $(BIN)/.installed
	$(BIN)/accrual export-schema --output schema.graphql

bench: $(BIN)/.installed postgres
	$(BIN)/python -m bench.customers

bench-ingest: $(BIN)/.installed postgres
	$(BIN)/python -m bench.ingest

bench-metrics: $(BIN)/.installed postgres
	$(BIN)/python -m bench.metrics

bench-billing: $(BIN)/.installed postgres
	$(BIN)/python -m bench.billing
