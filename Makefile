# Two commands on a fresh clone: `make run` and `make test`. See README.md.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: run test test-fast lint format bench venv dev-venv system-deps migrate seed clean

$(VENV)/.runtime: requirements.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required (found %s)" % sys.version.split()[0]'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

venv: $(VENV)/.runtime
dev-venv: $(VENV)/.dev

system-deps:
	bash scripts/ensure-system-deps.sh

migrate: venv
	$(PY) manage.py migrate --noinput

seed: migrate
	$(PY) manage.py seed_demo --port $(PORT)

## Everything on embedded defaults: SQLite, filesystem Celery broker, demo data; Ctrl-C stops it all.
run: seed
	MARKETPLACE_PORT=$(PORT) $(VENV)/bin/honcho start -f Procfile

## The whole suite. DATABASE_URL selects the database (CI: PostgreSQL); default SQLite.
test: dev-venv system-deps
	$(VENV)/bin/pytest

lint: dev-venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: dev-venv
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: dev-venv
	$(PY) bench/upload.py
	$(PY) bench/catalog_search.py

clean:
	rm -rf .local staticfiles test-artifacts
