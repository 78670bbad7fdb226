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

# Chart.js comes from npm (package.json pins it) and is copied into the gitignored static/vendor/.
install: static/vendor/chart.umd.min.js chromium

static/vendor/chart.umd.min.js: package.json package-lock.json
	npm ci --no-audit --no-fund --silent
	mkdir -p static/vendor
	cp node_modules/chart.js/dist/chart.umd.min.js $@

# The browser tests drive Debian's chromium; Playwright cannot download its own browser here.
.PHONY: chromium
chromium:
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)

# The probe tests run real proxy servers (v2ray, ss-server, trojan) and make certificates with openssl.
PROXY_PACKAGES := v2ray shadowsocks-libev trojan openssl
install: proxy-servers

.PHONY: proxy-servers
proxy-servers:
	@if ! command -v v2ray >/dev/null || ! command -v ss-server >/dev/null \
		|| ! command -v trojan >/dev/null || ! command -v openssl >/dev/null; then \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends $(PROXY_PACKAGES); \
	fi

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
