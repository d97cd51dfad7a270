# Two commands set everything up on a fresh machine: `make demo` and `make test`.
# Both create .venv when missing, (re)install the pinned dependencies when
# pyproject.toml changes, and are safe to run again.

PYTHON ?= python3
VENV ?= .venv
# Real-data-derived spectral templates (read from here, never copied into the project).
TEMPLATES ?= $(firstword $(RAYSURVEY_TEMPLATES) $(wildcard ../shared/templates/redrock))
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test demo lint format bench clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --upgrade --quiet pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip check
	touch $(STAMP)

install: $(STAMP)

test: install
	$(BIN)/python -m pytest --durations=15

demo: install
	$(BIN)/raysurvey demo --workdir .cache/demo $(if $(TEMPLATES),--templates $(TEMPLATES),)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install
	$(BIN)/python benchmarks/bench_io.py
	$(BIN)/python benchmarks/bench_synth.py

clean-venv:
	rm -rf $(VENV)
