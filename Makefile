# Two entry points, both from a fresh clone: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

$(BIN)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

.PHONY: venv demo test lint chromium
venv: $(BIN)/.installed

# Generate the no-LLM example and push it, stage by stage, to the embedded Hub (no account needed).
demo: venv
	$(BIN)/python -m flows.generate_and_push examples/multilingual_greetings.yaml local/multilingual-greetings \
		--num-records 1000 --description "Multilingual greetings, generated with samplers and templates." \
		--local-hub .localhub-data

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy

# The browser test drives Debian's Chromium through Playwright (never `playwright install`): install it if missing.
chromium:
	@[ -x /usr/bin/chromium ] || { \
		echo "Installing Debian's chromium for the browser test (needs root)"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

# Two test workers (pytest-xdist), each with its own embedded Hub and Prefect harness; tests/conftest.py groups them.
test: lint chromium
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup --no-loadscope-reorder
