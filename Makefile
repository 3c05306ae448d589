# The two first commands: `make run` and `make test` (README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
PYTEST_WORKERS ?= 4

.PHONY: run test lint typecheck pytest bench bench-quick migrate format install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## Embedded PostgreSQL + Redis under .data/, migrations, demo tenant, API and worker.
run: $(STAMP)
	$(BIN)/erp dev

## ruff, mypy --strict, then the whole suite (TEST_DATABASE_URL/TEST_REDIS_URL or embedded).
test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check platform tests bench migrations
	$(BIN)/ruff format --check platform tests bench migrations
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

## The OpenID provider the sign-in tests start (tests/auth: oidc-provider on Node),
## installed when npm is there (without it those tests skip, and fail under CI=true).
OIDC_PROVIDER := tests/auth/oidc_provider
$(OIDC_PROVIDER)/node_modules/.package-lock.json: $(OIDC_PROVIDER)/package-lock.json
	cd $(OIDC_PROVIDER) && npm ci --no-audit --no-fund --loglevel=error

pytest: $(STAMP) $(if $(shell command -v npm),$(OIDC_PROVIDER)/node_modules/.package-lock.json)
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile

## Benchmarks: figures as a table and bench/results/*.json.
bench: $(STAMP)
	$(BIN)/erp bench

bench-quick: $(STAMP)
	$(BIN)/erp bench --quick

## Upgrade the database of MIGRATION_DATABASE_URL (roles, schemas, policies). With
## `make run` going, `source .data/env` first to migrate its embedded database.
migrate: $(STAMP)
	$(BIN)/erp migrate

format: $(STAMP)
	$(BIN)/ruff format platform tests bench migrations
	$(BIN)/ruff check --fix platform tests bench migrations

clean:
	rm -rf .data .mypy_cache .ruff_cache .pytest_cache
