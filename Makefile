# carve: the two commands are `make demo` and `make test`; both set up first.
#
#   make setup        idempotent: .venv, JDBC jars, dynalite, databases
#   make demo         carve demo against a fresh in-memory dynalite
#   make test         ruff (lint and the layers' import rules), chromium for the report test, then pytest in
#                     TEST_WORKERS processes (default 2; a module's tests stay in one); make test PYTEST_ARGS='-m integration -x'
#   make lint         ruff only
#   make bench        scripts/benchmark.py against dynalite; BENCH_ARGS='...'
#   make bench-transform  scripts/bench_transform.py: carve's transform against a hand-written job, same items; BENCH_ARGS='--scale 15'
#   make bench-writes scripts/bench_writes.py PART=cpu|rate|hotkeys|faults (starts its own dynalite and proxy)
#   make stack-up     keep a dynalite on 127.0.0.1:8000 for exploring (pid in .run/)
#   make stack-down   stop it
#   make clean        remove .run, reports and build artefacts (keeps .venv, .tools)
#   make distclean    clean, and remove .venv and .tools too

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
PYTEST_ARGS ?=
TEST_WORKERS ?= 2
BENCH_ARGS ?=
STACK_PORT := 8000

.PHONY: help setup demo lint test bench bench-transform bench-writes stack-up stack-down clean distclean

help:
	@sed -n 's/^#   //p' $(firstword $(MAKEFILE_LIST))

setup:
	@scripts/setup

demo: setup
	scripts/with-dynalite $(VENV)/bin/carve demo

lint: setup
	$(VENV)/bin/ruff check .

test: lint
	@scripts/ensure-browser
	$(VENV)/bin/pytest --numprocesses $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

bench: setup
	scripts/with-dynalite $(VENV)/bin/python scripts/benchmark.py $(BENCH_ARGS)

bench-transform: setup
	$(VENV)/bin/python scripts/bench_transform.py $(BENCH_ARGS)

# The writer's benchmarks (rate fidelity, client CPU, hot keys, faults); PART=cpu|rate|hotkeys|faults
bench-writes: setup
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev,bench]'
	$(VENV)/bin/python scripts/bench_writes.py $(PART) $(BENCH_ARGS)

stack-up: setup
	@CARVE_DYNALITE_PORT=$(STACK_PORT) scripts/with-dynalite --up

stack-down:
	@scripts/with-dynalite --down

# stack-down first: removing .run would otherwise orphan a running dynalite.
clean: stack-down
	rm -rf .run reports build dist *.egg-info spark-warehouse metastore_db derby.log .pytest_cache
	find . -path ./.venv -prune -o -path ./.tools -prune -o -path ./.git -prune -o \
		-type d -name __pycache__ -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) .tools
