# pgclaim: make demo, make test. See README.md.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CLUSTER := scripts/cluster.sh
# The throwaway cluster's URL (started on demand); DATABASE_URL overrides it for demo/migrate.
cluster_url = $(shell $(CLUSTER) start)
# make test-repeat: how many rounds, and what each round runs (the concurrency, model, race
# and chaos tests of make test: the fast subset, without --heavy).
N ?= 5
REPEAT_TESTS := tests/python/concurrency tests/python/chaos

.PHONY: help venv deps db db-stop migrate demo test test-repeat lint pgtap pytest bench chaos \
	clean migration

help:
	@echo "make demo     run the whole job end to end on a throwaway cluster (or DATABASE_URL)"
	@echo "make test     lint, pgTAP (pg_prove) and pytest (docs/testing.md)"
	@echo "make test-repeat N=5  the concurrency and chaos tests of make test, N rounds in a row"
	@echo "make migrate  install or upgrade pgclaim in DATABASE_URL (default: the throwaway cluster)"
	@echo "make bench    benchmarks;  make chaos  fault-injection suite"
	@echo "make db-stop / make clean  stop the throwaway cluster / and remove the venv"

$(VENV)/.stamp: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

venv: $(VENV)/.stamp

deps:
	@scripts/deps.sh

db: deps
	@$(CLUSTER) start

db-stop:
	@$(CLUSTER) stop

migrate: venv
	@url="$${DATABASE_URL:-}"; \
	if [ -z "$$url" ]; then scripts/deps.sh; base=$$($(CLUSTER) start); \
	  psql "$$base" -qXtAc "select 1 from pg_database where datname = 'pgclaim'" | grep -q 1 || \
	  psql "$$base" -qXc 'create database pgclaim'; url="$${base%/*}/pgclaim"; fi; \
	$(VENV)/bin/pgclaim --database "$$url" migrate

demo: venv
	@url="$${DATABASE_URL:-}"; \
	if [ -z "$$url" ]; then scripts/deps.sh; base=$$($(CLUSTER) start); \
	  psql "$$base" -qXc 'drop database if exists pgclaim_demo with (force)' -c 'create database pgclaim_demo'; \
	  url="$${base%/*}/pgclaim_demo"; fi; \
	$(PY) scripts/demo.py --database "$$url"

lint: venv
	$(VENV)/bin/sqlfluff lint --processes 2 sql migrations tests/sql
	$(VENV)/bin/ruff check client tests/python scripts bench examples
	$(VENV)/bin/mypy

pgtap: venv deps
	@scripts/pgtap.sh "$$($(CLUSTER) start)"

pytest: venv deps
	@PGCLAIM_TEST_URL="$$($(CLUSTER) start)" $(VENV)/bin/pytest -q \
	  --cov=pgclaim --cov-report=term-missing:skip-covered tests/python

test: venv deps lint pgtap pytest

test-repeat: venv deps
	@url="$$($(CLUSTER) start)"; start=$$(date +%s); \
	for i in $$(seq 1 $(N)); do \
	  echo "test-repeat: round $$i of $(N)"; \
	  if ! PGCLAIM_TEST_URL="$$url" $(VENV)/bin/pytest -q -x $(REPEAT_TESTS); then \
	    echo "test-repeat: round $$i of $(N) FAILED (after $$(( $$(date +%s) - start )) s)"; \
	    exit 1; \
	  fi; \
	done; \
	echo "test-repeat: $(N) of $(N) rounds passed in a row in $$(( $$(date +%s) - start )) s"

migration: venv
	$(PY) scripts/build_migration.py

bench: venv deps
	@PGCLAIM_BENCH_URL="$$($(CLUSTER) start)" $(PY) bench/run.py $(BENCH_ARGS)

chaos: venv deps
	@PGCLAIM_TEST_URL="$$($(CLUSTER) start)" $(VENV)/bin/pytest -q --heavy -m chaos tests/python/chaos $(CHAOS_ARGS)

clean: db-stop
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage
