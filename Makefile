# Two commands on a fresh clone: `make run` and `make test`. See README.md.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
export PYTHONDONTWRITEBYTECODE := 1

APPS := chain common compute_to_data config devtools frontend integrations marketplace

.PHONY: run test test-fast lint typecheck format bench venv dev-venv npm-deps frontend-assets contracts contracts-test system-deps runtime-deps migrate seed clean

$(VENV)/.runtime: requirements.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required (found %s)" % sys.version.split()[0]'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

## npm packages: the embedded chain (anvil) and the contract compiler (solc, OpenZeppelin).
node_modules/.installed: package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

## The browser wallet script (frontend/assets/ + ethers) bundled by esbuild into static files; no CDN.
WALLET_BUNDLE := frontend/static/frontend/vendor/wallet.bundle.js
$(WALLET_BUNDLE): node_modules/.installed frontend/build.mjs $(wildcard frontend/assets/*.js)
	node frontend/build.mjs

npm-deps: node_modules/.installed
frontend-assets: $(WALLET_BUNDLE)

venv: $(VENV)/.runtime
dev-venv: $(VENV)/.dev

system-deps:
	bash scripts/ensure-system-deps.sh

## What running the app needs from Debian: bubblewrap (the compute sandbox).
runtime-deps:
	bash scripts/ensure-system-deps.sh --runtime

migrate: venv
	$(PY) manage.py migrate --noinput

seed: migrate
	$(PY) manage.py seed_demo --port $(PORT)

## Everything on embedded defaults: SQLite, a SQLite Celery broker, anvil, demo data; web, worker and beat
## under a supervisor that restarts a crashed one; Ctrl-C stops it all.
run: migrate npm-deps frontend-assets runtime-deps
	$(PY) manage.py run_embedded --port $(PORT)

## The whole suite. DATABASE_URL selects the database (CI: PostgreSQL); default SQLite.
test: dev-venv npm-deps frontend-assets system-deps contracts-test
	$(VENV)/bin/pytest

lint: dev-venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

## mypy --strict on the integrator client (it ships py.typed); mypy with django-stubs and
## djangorestframework-stubs over every app (configured in pyproject.toml).
typecheck: dev-venv
	$(VENV)/bin/mypy --strict marketplace_client
	$(VENV)/bin/mypy $(APPS)

format: dev-venv
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: dev-venv npm-deps frontend-assets runtime-deps
	$(PY) bench/upload.py
	$(PY) bench/catalog_search.py
	$(PY) bench/api_load.py
	$(PY) bench/gas.py
	$(PY) bench/indexer.py
	$(PY) bench/dp_overhead.py
	$(PY) bench/job_latency.py
	$(PY) bench/soak.py

## Recompile the Solidity contracts into chain/artifacts/ (committed; a test catches stale ones).
contracts: npm-deps
	node chain/build.mjs

## The Foundry tests of the contracts (chain/test/*.t.sol): unit, fuzz and invariant, offline
## (forge from npm, compiling with the pinned solc-js through chain/solc.mjs; see foundry.toml).
contracts-test: npm-deps
	node_modules/.bin/forge test

clean:
	rm -rf .local staticfiles test-artifacts
