# Two commands do all set-up on a fresh clone:
#   make run    creates the venv, installs, builds the demo model if missing, starts the daemon
#   make test   creates the venv, installs, runs lint, types, layer contracts and the test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= config/daemon.toml
STAMP := $(VENV)/.installed
# PyTorch's CPU-only wheel index, used when pip has no CPU wheel locally. Set it empty (make run
# TORCH_INDEX=) to take torch from pip's usual sources instead (on Linux that is the CUDA build).
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
TORCH_VERSION := 2.13.0

.PHONY: run test check pytest venv demo clean-state

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	# torch==2.13.0 from PyPI is the multi-GB CUDA build on Linux. Install the CPU build first, so the
	# project install below finds torch satisfied: a CPU wheel pip already has locally (its find-links),
	# else PyTorch's CPU index. Its dependencies come with the project install.
	$(BIN)/python -m pip install --quiet --no-index --no-deps 'torch==$(TORCH_VERSION)+cpu' 2>/dev/null \
	  || $(if $(TORCH_INDEX),$(BIN)/python -m pip install --quiet 'torch==$(TORCH_VERSION)' --index-url $(TORCH_INDEX),true)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	# Only the OpenAPI JSON specs of this package are used (response validation in the emulator tests).
	$(BIN)/python -m pip install --quiet --no-deps alpaca-mcp-server==2.4.0
	touch $(STAMP)

venv: $(STAMP)

DEMO_MODEL := demo/best_model/actor.pth

$(DEMO_MODEL): | $(STAMP)
	$(BIN)/cappuccino-paper demo --dir demo

demo: $(STAMP)
	$(BIN)/cappuccino-paper demo --dir demo

# Builds the demo model once (about a minute), then runs the daemon in the foreground; Ctrl-C stops it.
run: $(STAMP) $(DEMO_MODEL)
	$(BIN)/cappuccino-paper run --config $(CONFIG)

check: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

pytest: $(STAMP)
	$(BIN)/pytest -q

test: check pytest

clean-state:
	rm -rf state/* logs/*
