# Two entry points, both from a fresh clone: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

$(BIN)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

.PHONY: venv demo test lint
venv: $(BIN)/.installed

# Generate the no-LLM example and push it, stage by stage, to the embedded Hub (no account needed).
demo: venv
	$(BIN)/python -m flows.generate_and_push examples/multilingual_greetings.yaml local/multilingual-greetings \
		--num-records 1000 --description "Multilingual greetings, generated with samplers and templates." \
		--local-hub .localhub-data

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -q
