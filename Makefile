# Two commands for a fresh machine: `make demo` (main job) and `make test` (the test suite).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Empty: torch comes from pip's own sources (here a local CPU wheel). Elsewhere PyPI's Linux wheel
# is the CUDA build; TORCH_INDEX=https://download.pytorch.org/whl/cpu takes the CPU one instead.
TORCH_INDEX ?=

.PHONY: setup demo test lint clean

$(STAMP): pyproject.toml constraints-cpu.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints-cpu.txt \
	    $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX)) torch==2.13.0
	$(BIN)/pip install -q -c constraints-cpu.txt -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/dae reproduce toy --out runs/toy --overwrite

test: setup
	DAE_DATA=$${DAE_DATA:-$(abspath ../shared/data)} $(BIN)/python -m pytest -n auto

lint: setup
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts

clean:
	rm -rf $(VENV) runs
