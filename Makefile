# The commands people type. `make serve` and `make test` do all set-up themselves.
SHELL := /bin/bash
UV := $(CURDIR)/scripts/uv
PACKAGES := server graphs agents tools prompts

.PHONY: setup serve worker migrate test lint typecheck pytest pytest-quick bench bench-long-thread bench-metrics bench-retention format

setup:
	@bash scripts/setup.sh

serve: setup
	$(UV) run trellis serve

worker: setup
	$(UV) run trellis worker

migrate: setup
	$(UV) run trellis migrate

lint:
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run lint-imports

typecheck:
	$(UV) run mypy

pytest:
	$(UV) run pytest -q

# The quick loop: everything but the multi-process fault tests and the JS client.
pytest-quick:
	$(UV) run pytest -q -m "not slow"

test: setup lint typecheck pytest

format:
	$(UV) run ruff check --fix .
	$(UV) run ruff format .

bench: setup
	$(UV) run python -m benchmarks.server
	$(UV) run python -m benchmarks.workers
	$(UV) run python -m benchmarks.assistant
	$(UV) run python -m benchmarks.long_thread
	$(UV) run python -m benchmarks.retention
	$(UV) run python -m benchmarks.metrics_overhead

# Issue 15: one thread to 1,000 turns; storage, turn cost, history and delete against the goals.
bench-long-thread: setup
	$(UV) run python -m benchmarks.long_thread

# Issue 20: runs/s at concurrency 10 with metrics on and off, rounds alternated.
bench-metrics: setup
	$(UV) run python -m benchmarks.metrics_overhead

# Issue 21: keep-last-20 on the 1,000-turn thread; bytes per table before and after.
bench-retention: setup
	$(UV) run python -m benchmarks.retention
