# DVT — build, test, demo and benchmarks. Every target installs what it needs.
SHELL := /bin/bash
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never
BUILD := $(CURDIR)/build
SHARED ?= $(CURDIR)/../shared

.PHONY: all build test services services-stop demo golden schema fmt lint bench bench-parse bench-compile clean

all: build

build:
	$(CARGO) build --workspace

## The README's test command: unit, snapshot and end-to-end tests, against
## throwaway PostgreSQL and MariaDB servers (installed with apt if missing,
## data under build/services, stopped by pid at the end even on failure).
test:
	$(CARGO) build --workspace
	bash scripts/services.sh start
	set -e; trap 'bash scripts/services.sh stop' EXIT; . build/services/env; $(CARGO) test --workspace
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## Start / stop the test databases by hand (tests read build/services/env).
services:
	bash scripts/services.sh start
services-stop:
	bash scripts/services.sh stop

## The README's first command: build and show DVT on the example projects.
demo:
	$(CARGO) build --workspace --release
	@echo; echo "== dvtc parse (examples/multi_db: PostgreSQL, MariaDB, DuckDB, SQLite) =="
	./target/release/dvtc --project-dir examples/multi_db parse
	@echo; echo "== dvtc ls --selector federation_matrix =="
	./target/release/dvtc --project-dir examples/multi_db ls --selector federation_matrix
	@echo; echo "== dvtc parse (examples/quickstart: DuckDB + SQLite) =="
	./target/release/dvtc --project-dir examples/quickstart parse

## Regenerate the committed JSON Schemas after changing schema/ types.
schema:
	DVT_UPDATE_SCHEMA=1 $(CARGO) test -p dvt-schema

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

bench: bench-parse bench-compile

## dvtc parse vs dbt parse on generated projects (1,000 and 5,000 models).
bench-parse:
	$(CARGO) build --workspace --release
	bash scripts/bench_dbt.sh "$(BUILD)" "$(SHARED)" parse 1000 5000

## dvtc compile vs dbt compile on generated projects (1,000 and 5,000 models).
bench-compile:
	$(CARGO) build --workspace --release
	bash scripts/bench_dbt.sh "$(BUILD)" "$(SHARED)" compile 1000 5000

## Review golden plan changes (accepts them; inspect with git diff golden/).
golden:
	$(CARGO) build --workspace
	INSTA_UPDATE=always $(CARGO) test -p dvt-e2e --test e2e golden
	git --no-pager diff --stat golden/

clean:
	$(CARGO) clean
	rm -rf $(BUILD)
