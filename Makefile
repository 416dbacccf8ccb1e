# DVT — build, test, demo and benchmarks. Every target installs what it needs.
SHELL := /bin/bash
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never
BUILD := $(CURDIR)/build
SHARED ?= $(CURDIR)/../shared

.PHONY: all build test demo golden schema fmt lint bench bench-parse clean

all: build

build:
	$(CARGO) build --workspace

## The README's test command: unit, snapshot and end-to-end tests.
test:
	$(CARGO) build --workspace
	$(CARGO) test --workspace
	$(CARGO) clippy --workspace --all-targets -- -D warnings

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

bench: bench-parse

## dvtc parse vs dbt parse on generated projects (1,000 and 5,000 models).
bench-parse:
	$(CARGO) build --workspace --release
	bash scripts/bench_parse.sh "$(BUILD)" "$(SHARED)"

clean:
	$(CARGO) clean
	rm -rf $(BUILD)
