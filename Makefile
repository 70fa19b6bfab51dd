# Two commands do everything on a fresh machine: `make serve` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test lint bench-deps clean chromium

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

# tests/test_browser.py drives Debian's chromium through Playwright (never a browser download);
# without it (no root, no apt) that test is skipped, saying why
chromium:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium) || echo "chromium not installed: tests/test_browser.py will be skipped"

test: lint chromium
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache
