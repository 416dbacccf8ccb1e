# DVT — build, test, demo and benchmarks. Every target installs what it needs.
SHELL := /bin/bash
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never
BUILD := $(CURDIR)/build
SHARED ?= $(CURDIR)/../shared
# One feature set for build, test and demo (tests' dev-dependencies included),
# so a cold `make test` compiles DataFusion once and `make test` after `make demo`
# reuses everything.
BUILD_FLAGS := --workspace --all-targets
TARGET_DIR := $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)
DEV_BIN := $(TARGET_DIR)/debug

.PHONY: all build test services services-stop demo compat golden schema fmt lint bench bench-parse bench-compile bench-seed bench-run bench-fed bench-fed-large dist clean fuzz

all: build

build:
	bash scripts/duckdb_lib.sh
	$(CARGO) build $(BUILD_FLAGS)

## The README's test command: unit, snapshot and end-to-end tests, against
## throwaway PostgreSQL and MariaDB servers (installed with apt if missing,
## data under build/services, stopped by pid at the end even on failure).
test:
	bash scripts/duckdb_lib.sh
	$(CARGO) build $(BUILD_FLAGS)
	bash scripts/py_duckdb.sh "$(BUILD)"
	bash scripts/services.sh start
	set -e; trap 'bash scripts/services.sh stop' EXIT; . build/services/env; . build/pyduckdb/env; $(CARGO) test --workspace
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## Start / stop the test databases by hand (tests read build/services/env).
services:
	bash scripts/services.sh start
services-stop:
	bash scripts/services.sh stop

## The README's first command: build DVT (the development build `make test`
## uses: no release/LTO here, that is for bench and dist) and run the quickstart
## end to end on its embedded databases (DuckDB warehouse, SQLite reporting file).
demo:
	bash scripts/duckdb_lib.sh
	$(CARGO) build $(BUILD_FLAGS)
	rm -f examples/quickstart/*.duckdb examples/quickstart/*.sqlite
	@echo; echo "== dvtc parse =="
	$(DEV_BIN)/dvtc --project-dir examples/quickstart parse
	@echo; echo "== dvtr build: seeds, models, snapshot and tests on DuckDB; order_report federated DuckDB -> SQLite =="
	$(DEV_BIN)/dvtr --project-dir examples/quickstart build
	@echo; echo "== dvtr show --inline =="
	$(DEV_BIN)/dvtr --project-dir examples/quickstart show --limit 10 --inline "select customer_id, first_name, number_of_orders, lifetime_value from main.customers order by customer_id"
	@echo; echo "== how the federated model ran: dvtc compile --explain order_report =="
	$(DEV_BIN)/dvtc --project-dir examples/quickstart compile --explain order_report
	@echo; echo "== what it wrote into the SQLite reporting file =="
	$(DEV_BIN)/dvtr --project-dir examples/quickstart --target reporting show --inline "select * from order_report order by customer_id"
	@echo; echo "== the multi-database example: the 7-case pushdown/federation matrix =="
	$(DEV_BIN)/dvtc --project-dir examples/multi_db compile --selector federation_matrix

## What users get: DuckDB compiled in and linked statically (~25 more minutes of
## C++ on 2 cores, once), so dvtr does not relocate a 70 MB shared library at start.
dist:
	$(CARGO) build --workspace --release --features dvt-runtime/bundled-duckdb

## Regenerate the committed JSON Schemas after changing schema/ types.
schema:
	DVT_UPDATE_SCHEMA=1 $(CARGO) test --workspace --test schema_files

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

bench: bench-parse bench-compile bench-seed bench-run bench-fed bench-fed-large

## dvtc parse vs dbt parse on generated projects (1,000 and 5,000 models).
bench-parse:
	bash scripts/duckdb_lib.sh
	$(CARGO) build --workspace --release
	bash scripts/bench_dbt.sh "$(BUILD)" "$(SHARED)" parse 1000 5000

## dvtc compile vs dbt compile on generated projects (1,000 and 5,000 models).
bench-compile:
	bash scripts/duckdb_lib.sh
	$(CARGO) build --workspace --release
	bash scripts/bench_dbt.sh "$(BUILD)" "$(SHARED)" compile 1000 5000
	bash scripts/bench_dbt.sh "$(BUILD)" "$(SHARED)" incremental 1000 5000

## dvtr seed vs psql \copy (1M rows; 3 x 1,046,572 rows in parallel) and vs DuckDB's read_csv.
bench-seed:
	bash scripts/duckdb_lib.sh
	$(CARGO) build --workspace --release
	bash scripts/dbt_venv.sh "$(BUILD)"
	bash scripts/services.sh start
	set -e; trap 'bash scripts/services.sh stop' EXIT; bash scripts/bench_seed.sh "$(BUILD)" "$(SHARED)"

## dvtr run vs dbt run, 1,000 generated models, on DuckDB and on PostgreSQL.
bench-run:
	bash scripts/duckdb_lib.sh
	$(CARGO) build --workspace --release
	bash scripts/dbt_venv.sh "$(BUILD)"
	bash scripts/services.sh start
	set -e; trap 'bash scripts/services.sh stop' EXIT; bash scripts/bench_run.sh "$(BUILD)" "$(SHARED)" 1000

## A federated model moving 900,000 rows PostgreSQL -> DuckDB vs psql \copy + DuckDB read_csv.
bench-fed:
	bash scripts/duckdb_lib.sh
	$(CARGO) build --workspace --release
	bash scripts/dbt_venv.sh "$(BUILD)"
	bash scripts/services.sh start
	set -e; trap 'bash scripts/services.sh stop' EXIT; bash scripts/bench_fed.sh "$(BUILD)"

## Issue 14: three 1,046,572-row tables (PostgreSQL x2, MariaDB) joined and aggregated
## into PostgreSQL vs exports + \copy of the result; default and 64 MiB budgets (file, S3).
bench-fed-large:
	bash scripts/duckdb_lib.sh
	$(CARGO) build --workspace --release
	bash scripts/services.sh start
	set -e; trap 'bash scripts/services.sh stop' EXIT; bash scripts/bench_fed_large.sh "$(BUILD)"

## The compatibility suite (issue 12): public dbt projects compiled by dbt-core
## 1.11 and by dvtc, every compiled file compared. Checkouts from COMPAT_SRC
## (default /work/.mirror); see compat/projects.tsv. Not part of `make test`.
compat:
	bash scripts/duckdb_lib.sh
	$(CARGO) build $(BUILD_FLAGS)
	bash scripts/dbt_venv.sh "$(BUILD)"
	bash compat/run.sh "$(BUILD)" "$(DEV_BIN)/dvtc"

## Fuzzing (issue 17): YAML loading, Jinja rendering, the federation splitter,
## CSV seeds and the plan reader, FUZZ_SECONDS each (default 1200) on nightly
## with cargo-fuzz (both installed if missing). Not part of `make test`.
fuzz:
	bash scripts/fuzz.sh

## Review golden plan changes (accepts them; inspect with git diff golden/).
golden:
	bash scripts/duckdb_lib.sh
	$(CARGO) build $(BUILD_FLAGS)
	INSTA_UPDATE=always $(CARGO) test --workspace --test e2e golden
	git --no-pager diff --stat golden/

clean:
	$(CARGO) clean
	rm -rf $(BUILD)
