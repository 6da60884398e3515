"""The vLLM backend on the real engine (vLLM's CPU build in its own venv: `make test-vllm`).
Deselected in `make test`; here a missing vLLM or SmolLM2 is an error, not a skip."""
from __future__ import annotations

import os

import pytest
import torch
from safetensors.torch import load_file

from mas.agents.backends.base import GenerationRequest, SamplingParams
from mas.agents.backends.vllm import VLLMBackend
from mas.agents.models import load_tokenizer, resolve

pytestmark = pytest.mark.vllm

# On 2 cores: a small KV cache and no thread binding (the default binding reserves cores).
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")


@pytest.fixture(scope="module")
def smollm2():
    path = resolve("smollm2-135m-instruct")
    engine = VLLMBackend(path, dtype="float32", enable_sleep_mode=False, enforce_eager=True, max_model_len=1024)
    yield path, engine
    del engine


def _greedy_text(engine, tokenizer, prompt: str) -> str:
    request = GenerationRequest(prompt_ids=tokenizer(prompt)["input_ids"])
    (gen,) = engine.generate([request], SamplingParams(temperature=0.0, max_new_tokens=12), seed=0)
    return gen.text


def test_weights_from_memory_change_generation_and_the_folder_restores_it_exactly(smollm2):
    path, engine = smollm2
    tokenizer = load_tokenizer(path)
    prompt = "The capital of France is"
    before = _greedy_text(engine, tokenizer, prompt)
    weights = load_file(os.path.join(path, "model.safetensors"))
    engine.set_weights({k: v * 0.5 if ".mlp." in k else v for k, v in weights.items()})
    changed = _greedy_text(engine, tokenizer, prompt)
    engine.set_weights(path)
    assert changed != before
    assert _greedy_text(engine, tokenizer, prompt) == before
    with pytest.raises(FileNotFoundError):
        engine.set_weights(str(os.path.dirname(path)))  # no safetensors there
