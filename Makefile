# dpsweep: two commands get you going.
#   make demo   creates .venv, installs everything (torch CPU build first), runs the quickstart sweep
#   make test   runs the test suite in the same environment (make test-fast: the quick tier)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
TORCH_VERSION ?= 2.13.0
# Where torch comes from: empty = pip's configured index (PyPI's Linux wheel is the CUDA build);
# a CPU-only machine can pass TORCH_INDEX=https://download.pytorch.org/whl/cpu (a few hundred MB).
TORCH_INDEX ?=

.PHONY: demo test test-fast test-slow lint bench gpu-check venv clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# torch first, pinned: an unpinned torch pulls a multi-GB CUDA build
	$(PIP) install --quiet torch==$(TORCH_VERSION) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PIP) install --quiet -e ".[dev,model]"
	touch $@

venv: $(VENV)/.installed

demo: $(VENV)/.installed
	$(PY) -m dpsweep.demo --space search_spaces/quickstart.yaml

# Test tiers (markers in pyproject.toml; README "Running the tests"):
#   test       what CI runs: every test but `slow` (Ray sweeps, Ray workers and CLI runs included)
#   test-fast  no Ray runtime, no CLI child processes, nothing slow: about 3 min on 2 CPUs
#   test-slow  only the `slow` tests (about 20 min); none being marked would be reported, not a failure (pytest exit 5)
test: $(VENV)/.installed
	$(PY) -m pytest -q -m "not slow"

test-fast: $(VENV)/.installed
	$(PY) -m pytest -q -m "not ray and not cli_subprocess and not slow"

test-slow: $(VENV)/.installed
	$(PY) -m pytest -q -m slow; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "test-slow: no test is marked slow; nothing to run"; else exit $$rc; fi

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check platform tests

bench: $(VENV)/.installed
	$(VENV)/bin/dpsweep bench step
	$(VENV)/bin/dpsweep bench calibration
	$(VENV)/bin/dpsweep bench sweep
	$(VENV)/bin/dpsweep bench sweep --workers 2 --trials-per-target 1 --epsilons 8 inf

# On a machine with an NVIDIA GPU (and the CUDA build of torch: see README), a few minutes on
# one GPU: one quickstart trial trained on the GPU, its model saved and reloaded to predict;
# DP / non-private step-time ratio and peak GPU memory per Opacus mode (hooks, ghost) for
# MiniLM and a BERT-base-sized model built from config; trials per hour with 1, 2 and 4
# trials sharing the GPU. Prints a table; the JSON goes to gpu-check.json.
gpu-check: $(VENV)/.installed
	$(VENV)/bin/dpsweep bench gpu --out gpu-check.json

clean:
	rm -rf $(VENV) build *.egg-info
