# Strata: the two commands a newcomer needs.
#   make run    virtualenv, demo landing zone, Dagster (webserver + daemon) on http://127.0.0.1:3000
#   make test   virtualenv with test tools, lint, the whole test suite (CI runs exactly this)
#   make prod   the production layout locally: PostgreSQL, gRPC code server, daemon, webserver
# Both honour DAGSTER_HOME, STRATA_DATA_DIR and STRATA_TPCH_SF.

SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
# The virtualenv's tools (dbt among them: dagster-dbt runs it) come first on PATH.
export PATH := $(CURDIR)/$(BIN):$(PATH)

export STRATA_DATA_DIR ?= $(CURDIR)/.strata
export DAGSTER_HOME ?= $(STRATA_DATA_DIR)/dagster_home
export STRATA_TPCH_SF ?= 0.1
# One "planned" event per asset for a range run instead of one per partition (see docs/benchmarks.md).
export DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS ?= 1
# A step's per-partition materializations are stored as one batch (dagster.yaml's event log storage).
export DAGSTER_EVENT_BATCH_SIZE ?= 1000

HOST ?= 127.0.0.1
PORT ?= 3000

.PHONY: run prod test install install-dev lint lock bench bench-lake bench-cdc clean

$(VENV)/.base: requirements/base.txt pyproject.toml scripts/bootstrap.sh
	scripts/bootstrap.sh base
	touch $@

$(VENV)/.dev: $(VENV)/.base requirements/dev.txt
	scripts/bootstrap.sh dev
	touch $@

install: $(VENV)/.base
install-dev: $(VENV)/.dev

run: install
	$(BIN)/strata demo generate
	$(BIN)/strata prepare
	scripts/serve.sh $(BIN)/dagster dev -w workspace.yaml -h $(HOST) -p $(PORT)

lint: install-dev
	$(BIN)/ruff check platform platform_tests bench
	$(BIN)/ruff format --check platform platform_tests bench
	$(BIN)/sqlfluff lint dbt
	$(BIN)/hadolint Dockerfile

# The production process layout locally: PostgreSQL (Debian's, in a temp data dir, unless
# DAGSTER_PG_HOST is set), the gRPC code server, dagster-daemon and dagster-webserver (deploy/).
prod: install
	scripts/system-deps.sh postgresql
	$(BIN)/strata demo generate
	BIN=$(BIN) HOST=$(HOST) PORT=$(PORT) deploy/prod.sh

# Debian packages the tests use: PostgreSQL 15 (the tests start their own server) with the wal2json
# logical decoding plugin (change data capture), and Chromium
# for the browser tests (driven by Playwright, never downloaded by it).
SYSTEM_PACKAGES := postgresql postgresql-15-wal2json chromium chromium-driver
# pytest-xdist workers; the end-to-end tests (xdist group "e2e") run one at a time on one of them,
# the lake's concurrent-writer tests (group "lake") one at a time on one of them, the rest wherever a worker is free.
TEST_WORKERS ?= 2

test: install-dev
	scripts/system-deps.sh $(SYSTEM_PACKAGES)
	$(MAKE) --no-print-directory lint
	$(BIN)/strata prepare
	$(BIN)/strata registry validate
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadgroup

# The benchmarks of docs/benchmarks.md, each with its baseline measured in the same run:
# P1 (Materialize all at SF 1), P2 (one day) and P4 (peak memory): bench/spine.py;
# P3 (code-location load with 1,000 datasets): bench/registry_load.py;
# P6 (overhead per asset-partition, 200 datasets x 365 days): bench/many_datasets.py.
bench: install-dev
	STRATA_DATA_DIR=$(CURDIR)/.strata/bench STRATA_TPCH_SF=$${BENCH_SF:-1} \
	  DAGSTER_HOME=$(CURDIR)/.strata/bench/dagster_home $(BIN)/python bench/spine.py
	$(BIN)/python bench/registry_load.py
	$(BIN)/python bench/many_datasets.py

# Concurrent writers on the DuckLake backend against the DuckDB file (docs/benchmarks.md):
# chunked Materialize all with 1, 2 and 4 writers, publish time on both; about 30 min at SF 1.
bench-lake: install-dev
	scripts/system-deps.sh postgresql
	STRATA_DATA_DIR=$(CURDIR)/.strata/bench-lake STRATA_TPCH_SF=$${BENCH_SF:-1} $(BIN)/python bench/lake_writers.py

# Change data capture against COPY and pg_recvlogical on a throwaway PostgreSQL (docs/benchmarks.md):
# pgbench scale $${BENCH_CDC_SCALE:-10}, 100,000 accounts per step.
bench-cdc: install-dev
	scripts/system-deps.sh postgresql postgresql-15-wal2json
	$(BIN)/python bench/cdc_capture.py

# Re-pin requirements/*.txt from requirements/*.in (no index URLs are recorded).
lock: install-dev
	cd requirements && ../$(BIN)/uv pip compile base.in -p 3.11 -o base.txt -q \
	  && ../$(BIN)/uv pip compile dev.in -p 3.11 -o dev.txt -q

clean:
	rm -rf $(VENV) dbt/target dbt/logs
