# Two commands do everything on a fresh machine: `make serve` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test lint bench-deps clean

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

test: lint
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache

# the JavaScript client's tests alone (make test runs them too, via tests/test_js_client.py)
.PHONY: test-js
test-js: $(STAMP)
	cd clients/js && npm ci --no-audit --no-fund && LIVEROOM_PYTHON=$(CURDIR)/$(BIN)/python npm test
