# Two commands do everything on a fresh machine: `make serve` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test lint system-deps bench-deps clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[test,bench]"
	touch $(STAMP)

serve: $(STAMP)
	$(BIN)/liveroom serve --config config.toml

# types (mypy --strict on liveroom/) and lint (ruff) first: a type error fails in seconds
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

# Debian packages some tests drive for real (tests/test_nginx.py runs deploy/nginx.conf,
# tests/test_browser.py drives chromium through Playwright: never a browser download);
# installed when missing and apt-get is there, else those tests say why they skip
system-deps:
	@command -v nginx >/dev/null 2>&1 || test -x /usr/sbin/nginx || \
	  (command -v apt-get >/dev/null 2>&1 && apt-get update -qq && apt-get install -y -qq nginx >/dev/null) || \
	  echo "nginx not installed: tests/test_nginx.py will skip"
	@command -v chromium >/dev/null 2>&1 || \
	  (command -v apt-get >/dev/null 2>&1 && apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || \
	  echo "chromium not installed: tests/test_browser.py will skip"

test: lint system-deps
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache

# the JavaScript client's tests alone (make test runs them too, via tests/test_js_client.py)
.PHONY: test-js
test-js: $(STAMP)
	cd clients/js && npm ci --no-audit --no-fund && LIVEROOM_PYTHON=$(CURDIR)/$(BIN)/python npm test
