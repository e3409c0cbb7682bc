# ClientWindow — `make run` starts the portal, `make test` runs the whole suite.
SHELL := /bin/bash
UV = $(shell command -v uv 2>/dev/null || echo var/tools/bin/uv)
# This machine has Python; uv must never download an interpreter of its own.
export UV_PYTHON_DOWNLOADS := never
# Compiled bytecode is cached under var/, outside the tree. An environment that turns it off
# (PYTHONDONTWRITEBYTECODE) makes every process compile its imports again: each of the suite's
# servers, PDF renderers and manage.py runs (measured: importing Django, WeasyPrint, DRF and
# allauth takes 2.2 s without the cache, 0.9-1.3 s with it).
unexport PYTHONDONTWRITEBYTECODE
export PYTHONPYCACHEPREFIX := $(CURDIR)/var/pycache
PY = $(UV) run --frozen --quiet python
THROWAWAY = $(PY) scripts/localdev.py throwaway --

.PHONY: help setup run test lint pytest bench check-deploy clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

setup: ## install Debian packages (as root), uv and the locked Python dependencies
	@bash scripts/setup.sh

run: setup ## the portal on http://127.0.0.1:8000 with its own PostgreSQL, worker and demo admin
	@$(PY) scripts/localdev.py run

test: setup ## lint + the whole test suite, on a throwaway PostgreSQL cluster
	@$(THROWAWAY) bash scripts/test.sh

lint: setup ## ruff, mypy, makemigrations --check, check --deploy (on a throwaway cluster)
	@$(THROWAWAY) bash scripts/test.sh --lint-only

bench: setup ## the benchmarks in tests/performance, printing their figures (BENCH_SCALE=10M: at 10M messages too; docs/SCALE.md)
	@$(THROWAWAY) $(PY) -m pytest tests/performance -q -s -p no:randomly --no-header

clean: ## remove caches (keeps var/, the local database and keys)
	rm -rf .mypy_cache .ruff_cache .hypothesis staticfiles
