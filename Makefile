# Set-up, demo and test targets. Every target installs what it needs first.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
DEMO_INPUTS := $(foreach f,$(sort $(wildcard samples/*.txt samples/*.yaml samples/*.json)),--from $(f))

.PHONY: install demo test test-postgres lint format benchmark clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt
	touch $@

# Merge the sample subscriptions (one per input format, every server on 127.x) on SQLite.
demo: install
	$(PY) manage.py migrate --noinput --verbosity 0
	$(PY) manage.py merge $(DEMO_INPUTS) --out out/demo
	@echo "Exports are in out/demo/"

test: install
	$(VENV)/bin/pytest

test-postgres: install
	DATABASE_URL=postgres://postgres@127.0.0.1:5432/test $(VENV)/bin/pytest

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff format .

benchmark: install
	$(PY) manage.py migrate --noinput --verbosity 0
	$(PY) manage.py benchmark

clean:
	rm -rf out var .pytest_cache
